"""Cached backbone features: the backbone is frozen, so its features of a pair never
change during training. They are computed once per pair (of its plain, un-augmented
view at the model's input size) and memory-mapped from disk afterwards.

Layout of a cache folder::

    meta.json        format, backbone config, ids, slots, dtype, grid, progress
    level{k}.npy     (N, S, C, h, w) features of backbone level k; slot s of
                     ``meta["slots"]``: "original", "edited" and, for Stage II, "partner"
    masks.npy        (N, 1, H, W) uint8 ground truth at the input size (when known)

``.npy`` files are plain arrays opened with ``numpy.load(mmap_mode="r",
allow_pickle=False)``: nothing is unpickled, and only the rows of a batch are read.
Building resumes where it stopped (``meta.json`` records how many rows are written).

Augmentation interplay: features exist only for the plain view, so the cache path
cannot crop (a crop changes every token's receptive field). It flips in feature space:
the feature maps and the mask are mirrored along the width. This is an approximation:
DINOv2's features of a mirrored image are not exactly mirrored features (its position
embeddings are not mirror-symmetric), but it keeps the head from learning a left/right
bias, which is what the flip is for. Training from images (no cache) does both the
crop and the flip exactly.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.io import atomic_write_text
from ..device import autocast
from ..errors import ConfigError
from .datasets import PairTrainingSet, collate_pairs

log = logging.getLogger(__name__)

FORMAT = "sigma-iml-feature-cache"
FORMAT_VERSION = 1
META_FILE = "meta.json"
MASKS_FILE = "masks.npy"


def _level_file(level: int) -> str:
    return f"level{level}.npy"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


class FeatureCache:
    """A built (or partly built) cache folder, memory-mapped read-only."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        meta_path = self.directory / META_FILE
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{meta_path} is not a feature cache: {err}") from err
        if self.meta.get("format") != FORMAT or self.meta.get("version") != FORMAT_VERSION:
            raise ConfigError(f"{meta_path} is not a version-{FORMAT_VERSION} feature cache")
        if not self.meta.get("complete"):
            raise ConfigError(f"feature cache {self.directory} is incomplete; build it first")
        self.levels = [
            np.load(self.directory / _level_file(k), mmap_mode="r", allow_pickle=False)
            for k in range(self.meta["num_levels"])
        ]
        masks = self.directory / MASKS_FILE
        self.masks = np.load(masks, mmap_mode="r", allow_pickle=False) if masks.exists() else None

    @property
    def ids(self) -> list[str]:
        return list(self.meta["ids"])

    @property
    def slots(self) -> list[str]:
        return list(self.meta["slots"])

    def __len__(self) -> int:
        return len(self.meta["ids"])

    def batch(
        self,
        indices: np.ndarray,
        *,
        flips: np.ndarray | None = None,
        device: torch.device | str = "cpu",
    ) -> dict[str, Any]:
        """Features of the rows ``indices``: ``{slot: [level (B, C, h, w) float32]}``,
        plus ``mask`` ``(B, 1, H, W)`` when the cache has masks. ``flips`` (bool per
        row) mirrors that row's features and mask along the width."""
        order = np.asarray(indices)
        # Sorted reads are sequential on disk; the batch is put back in order after.
        sorted_rows, inverse = np.unique(order, return_inverse=True)
        out: dict[str, Any] = {slot: [] for slot in self.slots}
        flip_rows = None if flips is None else torch.from_numpy(np.asarray(flips, dtype=bool))
        for level in self.levels:
            block = torch.from_numpy(np.ascontiguousarray(level[sorted_rows]))[inverse].float()
            if flip_rows is not None and flip_rows.any():
                block[flip_rows] = block[flip_rows].flip(-1)
            for s, slot in enumerate(self.slots):
                out[slot].append(block[:, s].to(device))
        if self.masks is not None:
            mask = torch.from_numpy(np.ascontiguousarray(self.masks[sorted_rows]))[inverse].float()
            if flip_rows is not None and flip_rows.any():
                mask[flip_rows] = mask[flip_rows].flip(-1)
            out["mask"] = mask.to(device)
        return out


def _as_list(items: list) -> list:
    """Collate nothing: failed items (None) must be seen, not dropped (module level, so
    worker processes can pickle it)."""
    return items


def cache_signature(backbone, dataset: PairTrainingSet, dtype: str) -> dict[str, Any]:
    """What a cache must match to be reused: the backbone's config, the pair ids, the
    slots and the storage type."""
    backbone_config = backbone.config.to_dict()
    name = backbone_config["name_or_path"]
    if Path(name).exists():
        backbone_config["name_or_path"] = str(Path(name).resolve())
    slots = ["original", "edited"] + (["partner"] if dataset.partners is not None else [])
    return {
        "backbone": backbone_config,
        "ids": [ref.id for ref in dataset.refs],
        "slots": slots,
        "dtype": dtype,
    }


def build_feature_cache(
    directory: str | os.PathLike,
    backbone,
    dataset: PairTrainingSet,
    *,
    dtype: str = "float16",
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    num_workers: int = 0,
) -> FeatureCache:
    """Compute (or finish computing) the features of every pair of ``dataset`` (which
    must not augment) into ``directory`` and open the cache. An existing complete cache
    with the same signature is reused as is; one with another signature is an error."""
    if dataset.augment is not None:
        raise ConfigError("a feature cache holds the plain view: build it from augment=None")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    signature = cache_signature(backbone, dataset, dtype)
    meta_path = directory / META_FILE
    meta: dict[str, Any] | None = None
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        stored = {key: meta.get(key) for key in signature}
        if stored != signature:
            differing = sorted(key for key in signature if stored[key] != signature[key])
            raise ConfigError(
                f"feature cache {directory} was built for another {' and '.join(differing)}; "
                "give another --cache-features folder or delete this one"
            )
        if meta.get("complete"):
            return FeatureCache(directory)

    count = len(dataset)
    height, width = dataset.image_size
    grid = (height // backbone.patch_size, width // backbone.patch_size)
    num_levels = len(backbone.config.layers)
    channels = backbone.hidden_size
    slots = signature["slots"]
    with_masks = dataset.with_masks and all(ref.has_mask for ref in dataset.refs)
    if meta is None:
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            **signature,
            "num_levels": num_levels,
            "channels": channels,
            "grid": list(grid),
            "image_size": [height, width],
            "has_masks": with_masks,
            "done": 0,
            "complete": False,
        }
        for k in range(num_levels):
            np.lib.format.open_memmap(
                directory / _level_file(k),
                mode="w+",
                dtype=np.dtype(dtype),
                shape=(count, len(slots), channels, *grid),
            ).flush()
        if with_masks:
            np.lib.format.open_memmap(
                directory / MASKS_FILE, mode="w+", dtype=np.uint8, shape=(count, 1, height, width)
            ).flush()
        _write_json_atomic(meta_path, meta)

    start = int(meta["done"])
    if start:
        log.info("feature cache %s: resuming at pair %d of %d", directory, start, count)
    levels = [np.load(directory / _level_file(k), mmap_mode="r+") for k in range(num_levels)]
    masks = np.load(directory / MASKS_FILE, mmap_mode="r+") if meta["has_masks"] else None
    subset = torch.utils.data.Subset(dataset, range(start, count))
    loader = DataLoader(subset, batch_size=batch_size, num_workers=num_workers, collate_fn=_as_list)
    row = start
    for raw in loader:
        if any(item is None for item in raw):
            bad = [dataset.refs[row + i].id for i, item in enumerate(raw) if item is None]
            raise ConfigError(f"cannot cache features: pairs {bad} failed to load")
        batch = collate_pairs(raw)
        images = torch.cat([batch[slot] for slot in slots]).to(device)
        with autocast(torch.device(device), autocast_dtype):
            maps = backbone(images)
        size = len(raw)
        for k, level in enumerate(maps):
            # (S * B, C, h, w) -> (B, S, C, h, w)
            stacked = level.float().reshape(len(slots), size, *level.shape[1:]).transpose(0, 1)
            levels[k][row : row + size] = stacked.cpu().numpy().astype(dtype)
        if masks is not None:
            masks[row : row + size] = batch["mask"].numpy().astype(np.uint8)
        row += size
        for level in levels:
            level.flush()
        if masks is not None:
            masks.flush()
        meta["done"] = row
        _write_json_atomic(meta_path, meta)
    meta["complete"] = True
    _write_json_atomic(meta_path, meta)
    del levels, masks
    return FeatureCache(directory)
