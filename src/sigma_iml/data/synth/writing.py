"""Items and sets of synthetic pairs: :func:`make_item` builds one in memory,
:func:`make_pairs` writes a set and its manifest."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ..io import atomic_write_bytes, atomic_write_text, encode_png
from .edits import EDIT_KINDS, EDITORS
from .noise import resynthesis_noise
from .scenes import SCENE_PHOTOS, crop_scene
from .side_effects import add_side_effect, side_effect_generator

#: Side lengths (pixels, inclusive) drawn for each item when ``size`` is not given: small,
#: so tests stay fast, and width and height drawn independently, so most items are
#: non-square. Drawn in steps of :data:`SIZE_STEP`, like the sizes editors emit.
DEFAULT_SIDE_RANGE: tuple[int, int] = (192, 320)
SIZE_STEP = 8

#: A local edit's mask must cover this fraction of the image (inclusive bounds); an
#: attempt outside it is redrawn.
LOCAL_MASK_FRACTION: tuple[float, float] = (0.02, 0.50)

#: A global edit must change at least this fraction of the pixels (a style that leaves
#: the image nearly as it was, e.g. "black and white" of a grey photo, is redrawn).
GLOBAL_MIN_CHANGED_FRACTION = 0.5

#: Prefix of the item ids: ``synth_000000``, ``synth_000001``, ...
ID_PREFIX = "synth_"

#: Attempts per item before giving up; later attempts use generic regions, which almost
#: always succeed, so reaching the limit means a bug rather than bad luck.
MAX_ATTEMPTS = 24

# Attempts from this one on ignore the named objects and edit a generic blob.
_GENERIC_FROM_ATTEMPT = 6


@dataclass
class SynthItem:
    """One generated pair in memory: images as ``(H, W, 3)`` uint8 RGB, the mask as an
    ``(H, W)`` bool array (True = edited), and its manifest record (without paths).
    ``intended_mask`` and ``side_effect_mask`` split ``mask`` when side effects were asked
    for (``mask`` is their union; see :mod:`.side_effects`). ``original_concept_mask`` and
    ``edited_concept_mask`` are where the tuple's concepts are (None for a ``null``
    concept): the ground truth of grounding."""

    id: str
    original: np.ndarray
    edited: np.ndarray
    mask: np.ndarray
    record: dict[str, Any]
    intended_mask: np.ndarray | None = None
    side_effect_mask: np.ndarray | None = None
    original_concept_mask: np.ndarray | None = None
    edited_concept_mask: np.ndarray | None = None


def _item_generators(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the edit and the noise of item ``index``."""
    edit_seq, noise_seq = np.random.SeedSequence([seed, index]).spawn(2)
    return np.random.Generator(np.random.PCG64(edit_seq)), np.random.Generator(
        np.random.PCG64(noise_seq)
    )


def _draw_size(rng: np.random.Generator) -> tuple[int, int]:
    low, high = DEFAULT_SIDE_RANGE
    steps = (high - low) // SIZE_STEP + 1
    return (
        low + SIZE_STEP * int(rng.integers(steps)),
        low + SIZE_STEP * int(rng.integers(steps)),
    )


def make_item(
    index: int,
    seed: int = 0,
    noise: float = 0.0,
    *,
    kinds: Sequence[str] = EDIT_KINDS,
    size: tuple[int, int] | None = None,
    side_effects: float | None = None,
) -> SynthItem:
    """Generate item ``index`` of the set ``(seed, noise, kinds, size, side_effects)`` in
    memory, as :func:`make_pairs` writes it. ``size`` is ``(width, height)``; ``None``
    draws each side from :data:`DEFAULT_SIDE_RANGE`. ``side_effects`` is the probability
    of an unasked edit elsewhere (:mod:`.side_effects`); None (the default) leaves the
    item as it always was and gives no intended/side-effect split."""
    kinds = _check_kinds(kinds)
    side_effects = _check_probability(side_effects)
    noise = _check_noise(noise)
    size = _check_size(size)
    kind = kinds[index % len(kinds)]
    rng, noise_rng = _item_generators(seed, index)
    width, height = size if size is not None else _draw_size(rng)
    low, high = LOCAL_MASK_FRACTION
    for attempt in range(MAX_ATTEMPTS):
        photo = SCENE_PHOTOS[int(rng.integers(len(SCENE_PHOTOS)))]
        scene = crop_scene(photo, (width, height), rng)
        edit = EDITORS[kind](scene, rng, attempt >= _GENERIC_FROM_ATTEMPT)
        changed = np.any(edit.edited != scene.image, axis=2)
        changed_fraction = float(changed.mean())
        if kind == "global":
            if changed_fraction >= GLOBAL_MIN_CHANGED_FRACTION:
                mask = np.ones((height, width), bool)
                break
        elif low <= changed_fraction <= high:
            mask = changed
            break
    else:  # pragma: no cover - generic regions make this unreachable in practice
        raise RuntimeError(
            f"could not make a {kind!r} edit for item {index} (seed {seed}) "
            f"in {MAX_ATTEMPTS} attempts; last changed fraction {changed_fraction:.4f}"
        )

    edited_clean, intended, side_effect, side_kind = edit.edited, None, None, None
    if side_effects is not None:
        intended = mask
        side_effect = np.zeros_like(mask)
        side_rng = side_effect_generator(seed, index)
        if side_rng.random() < side_effects and kind != "global":
            added = add_side_effect(edit.edited, mask, side_rng)
            if added is not None:
                edited_clean, side_effect, side_kind = added.edited, added.mask, added.kind
                mask = intended | side_effect
    edited, noise_params = resynthesis_noise(edited_clean, noise, noise_rng)
    item_id = f"{ID_PREFIX}{index:06d}"
    record: dict[str, Any] = {
        "id": item_id,
        "instruction": edit.instruction,
        "edit_type": kind,
        "original_concept": edit.original_concept,
        "edited_concept": edit.edited_concept,
        "action": kind,
        "noise": noise,
        "noise_params": noise_params,
        "source_photo": f"skimage.data.{photo.name}",
        "donor_photo": None if edit.donor_photo is None else f"skimage.data.{edit.donor_photo}",
        "width": width,
        "height": height,
        "mask_fraction": round(float(mask.mean()), 6),
        "details": edit.details,
        "seed": seed,
        "index": index,
        "attempts": attempt + 1,
    }
    if side_effects is not None:
        record["side_effect"] = (
            None
            if side_kind is None
            else {"kind": side_kind, "fraction": round(float(side_effect.mean()), 6)}
        )
    return SynthItem(
        item_id,
        scene.image,
        edited,
        mask,
        record,
        intended,
        side_effect,
        edit.original_region,
        edit.edited_region,
    )


# -------------------------------------------------------------------------- writing


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    if isinstance(kinds, str):  # a lone string would be iterated letter by letter
        kinds = (kinds,)
    kinds = tuple(kinds)
    if not kinds:
        raise ConfigError("kinds is empty: give at least one of " + ", ".join(EDIT_KINDS))
    unknown = [kind for kind in kinds if kind not in EDIT_KINDS]
    if unknown:
        raise ConfigError(f"unknown edit kind(s) {unknown}; known: {', '.join(EDIT_KINDS)}")
    return kinds


def _check_noise(noise: float) -> float:
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise must be a finite number >= 0, got {noise}")
    return noise


def _check_probability(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"side_effects is a probability in [0, 1], got {value}")
    return value


def _check_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    width, height = (int(side) for side in size)
    if width < 32 or height < 32:
        raise ConfigError(f"size must be at least 32x32 pixels, got {width}x{height}")
    return width, height


#: The manifest columns of the concept regions (null for a ``null`` concept).
CONCEPT_MASKS = ("original_concept_mask", "edited_concept_mask")

#: zlib level of the written PNGs: 3 compresses nearly as well as the default 6 at about
#: half the time.
PNG_COMPRESS_LEVEL = 3


def make_pairs(
    out: Path,
    n: int,
    seed: int = 0,
    noise: float = 0.0,
    *,
    kinds: Sequence[str] = EDIT_KINDS,
    size: tuple[int, int] | None = None,
    side_effects: float | None = None,
) -> Path:
    """Write ``n`` synthetic editing pairs under ``out`` and return the manifest's path.

    Files: ``out/original/<id>.png`` and ``out/edited/<id>.png`` (RGB), and
    ``out/mask/<id>.png`` (8-bit greyscale, 0 or 255, 255 = edited), ids
    ``synth_000000``, ``synth_000001``, ...; ``out/manifest.jsonl`` has one JSON object
    per item with ``id``, ``original``, ``edited``, ``mask`` (paths relative to
    ``out``), ``instruction``, ``edit_type`` (one of :data:`EDIT_KINDS`), the
    ground-truth parse ``original_concept`` / ``edited_concept`` / ``action`` (``"null"``
    for an absent concept, as the SIGMA parser writes it), ``noise`` and
    ``noise_params``, ``source_photo`` / ``donor_photo`` (``skimage.data`` names),
    ``width``, ``height``, ``mask_fraction``, ``details`` (colour, style, position),
    ``seed`` and ``index``, and ``original_concept_mask`` / ``edited_concept_mask``
    (``original_concept_mask/<id>.png``, ``edited_concept_mask/<id>.png``: where the
    original concept is on the original image and the edited concept on the edited one;
    null for a ``null`` concept), which training's ``priors: masks`` reads.

    ``seed`` fixes everything: the same ``(n, seed, noise, kinds, size)`` gives
    byte-identical files, and item ``i`` is the same for any ``n > i``. ``noise`` is the
    re-synthesis noise level of the edited images (0 = none, 1 = strong but realistic;
    see :func:`resynthesis_noise`); it never changes the mask. ``kinds`` are cycled
    (item ``i`` has kind ``kinds[i % len(kinds)]``). ``size`` is ``(width, height)`` for
    every item; by default each side is drawn from :data:`DEFAULT_SIDE_RANGE`.
    Files of an earlier, larger run in ``out`` are left alone; only the manifest says
    which files belong to this run.

    ``side_effects`` (a probability; None: off) gives each local edit, with that
    probability, an unasked edit elsewhere (:mod:`.side_effects`); the manifest then also
    has ``intended_mask`` and ``side_effect_mask`` (``intended_mask/<id>.png``,
    ``side_effect_mask/<id>.png``, the latter empty for items without one), ``mask`` is
    their union, and ``side_effect`` says what was added (``{"kind", "fraction"}`` or
    null).
    """
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    kinds = _check_kinds(kinds)
    noise = _check_noise(noise)
    size = _check_size(size)
    side_effects = _check_probability(side_effects)
    out = Path(out)
    names = ("original", "edited", "mask", *CONCEPT_MASKS)
    if side_effects is not None:
        names += ("intended_mask", "side_effect_mask")
    folders = {name: out / name for name in names}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)

    lines = []
    for index in range(n):
        item = make_item(index, seed, noise, kinds=kinds, size=size, side_effects=side_effects)
        arrays = [("original", item.original), ("edited", item.edited), ("mask", item.mask)]
        if side_effects is not None:
            arrays += [
                ("intended_mask", item.intended_mask),
                ("side_effect_mask", item.side_effect_mask),
            ]
        concepts = {
            "original_concept_mask": item.original_concept_mask,
            "edited_concept_mask": item.edited_concept_mask,
        }
        arrays += [(name, array) for name, array in concepts.items() if array is not None]
        paths: dict[str, str | None] = {}
        for name, array in arrays:
            if array.dtype == bool:
                array = np.where(array, 255, 0).astype(np.uint8)
            relative = f"{name}/{item.id}.png"
            atomic_write_bytes(out / relative, encode_png(array, compress_level=PNG_COMPRESS_LEVEL))
            paths[name] = relative
        for name in CONCEPT_MASKS:  # a null concept has no region
            paths.setdefault(name, None)
        record = {"id": item.id, **paths, **{k: v for k, v in item.record.items() if k != "id"}}
        lines.append(json.dumps(record, ensure_ascii=False))

    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "".join(line + "\n" for line in lines))
    return manifest
