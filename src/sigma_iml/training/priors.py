"""Instruction priors for training: the intent map ``P`` of the instruction branch
(parse → ground → fuse, :mod:`sigma_iml.instruction.branch`), computed once per pair
and memory-mapped, like the backbone features (the branch has no trainable part).

Layout of a prior folder::

    meta.json     ids, the branch settings, the input size, progress
    priors.npy    (N, H, W) float16 intent maps in [0, 1] at the model's input size

Training resizes a pair's prior to the pair's own size and crops, flips and resizes it
with the same draw as the images and the mask (:mod:`.datasets`); the cache path flips
it in feature space with the features. Without priors the head gets the uniform ε map,
as at annotation time without an instruction.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import atomic_write_text
from ..data.pair import PairRef, load_pair
from ..errors import ConfigError

log = logging.getLogger(__name__)

FORMAT = "sigma-iml-prior-cache"
META_FILE = "meta.json"
PRIORS_FILE = "priors.npy"


def _resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map to ``(height, width)`` (area when shrinking)."""
    import cv2

    height, width = size
    if values.shape == (height, width):
        return values.astype(np.float32, copy=False)
    shrinking = height < values.shape[0] and width < values.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(values.astype(np.float32), (width, height), interpolation=interpolation)
    return np.clip(resized, 0.0, 1.0)


class PriorStore:
    """Priors of one dataset, opened read-only; ``get(index)`` is ``(H, W)`` float32."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        meta = json.loads((self.directory / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or not meta.get("complete"):
            raise ConfigError(f"{self.directory} is not a complete prior cache")
        self.meta = meta
        self.priors = np.load(self.directory / PRIORS_FILE, mmap_mode="r", allow_pickle=False)

    def __len__(self) -> int:
        return len(self.meta["ids"])

    def get(self, index: int) -> np.ndarray:
        return np.asarray(self.priors[index], dtype=np.float32)

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """``(B, 1, H, W)`` float32 priors of ``indices``."""
        return np.stack([self.get(int(i)) for i in indices])[:, None]


def build_priors(
    directory: str | os.PathLike,
    refs: Sequence[PairRef],
    settings: dict[str, Any],
    image_size: tuple[int, int],
    *,
    branch: Callable | None = None,
    batch_size: int = 8,
) -> PriorStore:
    """Run the instruction branch (built from ``settings``, an
    :class:`~sigma_iml.instruction.branch.InstructionConfig` mapping, unless ``branch``
    is given) over ``refs`` and store the intent maps at ``image_size``. Resumes an
    interrupted build; a folder built for other ids, settings or size is refused."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    height, width = image_size
    signature = {
        "format": FORMAT,
        "ids": [ref.id for ref in refs],
        "settings": json.loads(json.dumps(settings, default=str)),
        "image_size": [height, width],
    }
    meta_path = directory / META_FILE
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if {key: meta.get(key) for key in signature} != signature:
            raise ConfigError(
                f"prior folder {directory} was built for other pairs, settings or size; "
                "give another folder"
            )
        if meta.get("complete"):
            return PriorStore(directory)
    else:
        meta = {**signature, "done": 0, "complete": False}
        np.lib.format.open_memmap(
            directory / PRIORS_FILE, mode="w+", dtype=np.float16, shape=(len(refs), height, width)
        ).flush()
        atomic_write_text(meta_path, json.dumps(meta) + "\n")

    if branch is None:
        from ..instruction.branch import InstructionBranch

        branch = InstructionBranch.from_config(dict(settings))
    priors = np.load(directory / PRIORS_FILE, mmap_mode="r+")
    for start in range(int(meta["done"]), len(refs), batch_size):
        chunk = refs[start : start + batch_size]
        pairs = [load_pair(ref, with_mask=False) for ref in chunk]
        for offset, result in enumerate(branch(pairs)):
            priors[start + offset] = _resize_map(result.intent_map, (height, width))
        priors.flush()
        meta["done"] = start + len(chunk)
        atomic_write_text(meta_path, json.dumps(meta) + "\n")
        log.info("priors: %d of %d", meta["done"], len(refs))
    meta["complete"] = True
    atomic_write_text(meta_path, json.dumps(meta) + "\n")
    del priors
    return PriorStore(directory)


def resize_prior(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A stored prior brought to a pair's own ``(height, width)`` before augmentation."""
    return _resize_map(values, size)
