"""Instruction priors for training: the intent map ``P`` of the instruction branch
(parse → ground → fuse, :mod:`sigma_iml.instruction.branch`) or of the concept masks a
dataset provides (``priors: masks``), computed once per pair and memory-mapped, like the
backbone features (the branch has no trainable part). docs/design.md, "Training priors".

Layout of a prior folder::

    meta.json     ids, the source and branch settings, the input size, progress
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
from typing import Any, Literal

import numpy as np

from ..data.io import atomic_write_text
from ..data.pair import PairRef, load_pair
from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)

FORMAT = "sigma-iml-prior-cache"
META_FILE = "meta.json"
PRIORS_FILE = "priors.npy"

#: What the stored maps were made from (:attr:`~.config.TrainConfig.priors`, less ``none``).
PriorSource = Literal["instruction", "masks"]


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


def mask_intent_map(ref: PairRef, size: tuple[int, int], epsilon: float) -> np.ndarray:
    """ACSF (Eq. 8) over the concept masks ``ref`` carries, at ``size`` ``(H, W)``: each
    mask becomes its concept map ``ε + (1 − ε)·m`` (Eq. 7, as grounding makes it), an
    absent one the ε map. The action is the dataset's ``action`` field when it names
    one, else the one the present masks imply (both: replace, edited only: add, original
    only: remove, none: global), so a pair without concept masks gets the ε map."""
    from ..data.images import load_mask
    from ..errors import ImageDecodeError
    from ..instruction.edit_tuple import ACTIONS
    from ..instruction.fusion import fuse
    from ..instruction.grounding import concept_map

    maps = []
    for kind, source in (
        ("original concept mask", ref.original_concept_mask),
        ("edited concept mask", ref.edited_concept_mask),
    ):
        if source is None:
            maps.append(concept_map(None, size, epsilon))
            continue
        try:
            mask = load_mask(source)
        except ImageDecodeError as err:
            raise DataError(f"{kind}: {err.reason}", item=ref.id, source=err.source) from err
        maps.append(concept_map(mask[None].astype(np.float32), size, epsilon))
    action = ref.meta.get("action")
    if action not in ACTIONS:
        has_original = ref.original_concept_mask is not None
        has_edited = ref.edited_concept_mask is not None
        action = {
            (True, True): "replace",
            (False, True): "add",
            (True, False): "remove",
            (False, False): "global",
        }[(has_original, has_edited)]
    return fuse(action, maps[0], maps[1], epsilon)


def _unreadable(ref: PairRef, err: DataError, size: tuple[int, int], epsilon: float) -> np.ndarray:
    """The ε map for a pair whose inputs cannot be read: training skips that pair when it
    fails to load (docs/reliability.md), so its prior is never used; the build goes on."""
    log.warning("priors: %s: %s; stored the uniform ε map", ref.id, err)
    return np.full(size, epsilon, dtype=np.float32)


def _branch_maps(
    branch: Callable, size: tuple[int, int], epsilon: float
) -> Callable[[Sequence[PairRef]], list[np.ndarray]]:
    """Intent maps of a chunk of refs from an instruction branch (decodes the images)."""

    def maps(refs: Sequence[PairRef]) -> list[np.ndarray]:
        loaded: dict[int, Any] = {}
        intents: dict[int, np.ndarray] = {}
        for index, ref in enumerate(refs):
            try:
                loaded[index] = load_pair(ref, with_mask=False)
            except DataError as err:
                intents[index] = _unreadable(ref, err, size, epsilon)
        results = branch(list(loaded.values())) if loaded else []
        for index, result in zip(loaded, results, strict=True):
            intents[index] = result.intent_map
        return [intents[index] for index in range(len(refs))]

    return maps


def build_priors(
    directory: str | os.PathLike,
    refs: Sequence[PairRef],
    settings: dict[str, Any],
    image_size: tuple[int, int],
    *,
    source: PriorSource = "instruction",
    branch: Callable | None = None,
    batch_size: int = 8,
) -> PriorStore:
    """Store the intent map of every ref at ``image_size``: with ``source="instruction"``
    from the instruction branch (built from ``settings``, an
    :class:`~sigma_iml.instruction.branch.InstructionConfig` mapping, unless ``branch``
    is given), with ``source="masks"`` from the refs' concept masks
    (:func:`mask_intent_map`, ε from ``settings``). Resumes an interrupted build; a
    folder built for other ids, source, settings or size is refused."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    height, width = image_size
    from ..instruction.config import InstructionConfig

    if source == "masks":  # only ε shapes mask priors: other settings do not key them
        settings = {"epsilon": InstructionConfig.from_dict(dict(settings)).epsilon}
    signature = {
        "format": FORMAT,
        "ids": [ref.id for ref in refs],
        "source": source,
        "settings": json.loads(json.dumps(settings, default=str)),
        "image_size": [height, width],
    }
    meta_path = directory / META_FILE
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        differing = sorted(key for key in signature if meta.get(key) != signature[key])
        if differing:
            raise ConfigError(
                f"prior folder {directory} was built with other {', '.join(differing)} "
                f"(now: source {source!r}, settings {signature['settings']}); delete it "
                "or give another --cache-features / --out folder"
            )
        if meta.get("complete"):
            return PriorStore(directory)
    else:
        meta = {**signature, "done": 0, "complete": False}
        np.lib.format.open_memmap(
            directory / PRIORS_FILE, mode="w+", dtype=np.float16, shape=(len(refs), height, width)
        ).flush()
        atomic_write_text(meta_path, json.dumps(meta) + "\n")

    if source == "masks":
        epsilon = float(settings["epsilon"])

        def one_map(ref: PairRef) -> np.ndarray:
            try:
                return mask_intent_map(ref, (height, width), epsilon)
            except DataError as err:
                return _unreadable(ref, err, (height, width), epsilon)

        def intent_maps(chunk: Sequence[PairRef]) -> list[np.ndarray]:
            return [one_map(ref) for ref in chunk]

    else:
        if branch is None:
            from ..instruction.branch import InstructionBranch

            try:
                branch = InstructionBranch.from_config(dict(settings))
            except ConfigError as err:
                raise ConfigError(
                    f"{err}. priors: instruction runs the instruction branch on every "
                    "training pair: name its models in the config's instruction: section, "
                    "--init a checkpoint whose instruction.json names them, or give "
                    "--weights DIR; or train with priors: masks (concept masks in the "
                    "manifest) or priors: none"
                ) from err
        epsilon = InstructionConfig.from_dict(dict(settings)).epsilon
        intent_maps = _branch_maps(branch, (height, width), epsilon)
    priors = np.load(directory / PRIORS_FILE, mmap_mode="r+")
    for start in range(int(meta["done"]), len(refs), batch_size):
        chunk = refs[start : start + batch_size]
        for offset, intent in enumerate(intent_maps(chunk)):
            priors[start + offset] = _resize_map(intent, (height, width))
        priors.flush()
        meta["done"] = start + len(chunk)
        atomic_write_text(meta_path, json.dumps(meta) + "\n")
        log.info("priors (%s): %d of %d", source, meta["done"], len(refs))
    meta["complete"] = True
    atomic_write_text(meta_path, json.dumps(meta) + "\n")
    del priors
    return PriorStore(directory)


def resize_prior(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A stored prior brought to a pair's own ``(height, width)`` before augmentation."""
    return _resize_map(values, size)
