"""Unasked edits: what ``make-pairs --side-effects P`` adds to a pair, elsewhere.

With probability ``P`` a local edit (add, remove, attribute change, replace) gets a
second, small edit that its instruction does not ask for, away from the intended region:

``colour shift``
    the hue and brightness of a small blob changed (a recolouring that leaked);
``paste``
    a small blob of the same photo copied from elsewhere (a duplicated texture or
    object part, a typical diffusion artefact);
``removal``
    a small blob filled from its surroundings (something quietly erased).

The blob covers 0.5-3% of the image and keeps :data:`SIDE_EFFECT_MARGIN` pixels between
its changed pixels and the intended ones, so the two masks never touch and the split of
:mod:`sigma_iml.faithfulness` has an exact answer. Its mask follows the generator's mask
rule (the pixels whose stored value changed). A global edit asks for every pixel, so it
has no "elsewhere" and never gets one. Draws come from their own stream
(``SeedSequence([seed, index, SIDE_EFFECT_STREAM])``), so the intended edit, its mask
and the noise of an item are the same whatever ``P`` is, and whether item ``i`` gets a
side effect is ``u_i < P`` for one uniform ``u_i``: a larger ``P`` adds side effects to
more items without changing the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .edits import _composite, _feather, _inpaint, _paste
from .scenes import _blob

SIDE_EFFECT_KINDS: tuple[str, ...] = ("colour shift", "paste", "removal")
#: The extra word of the item's seed sequence for the side-effect stream.
SIDE_EFFECT_STREAM = 0x5E
#: Fraction of the image a side effect's blob covers (inclusive bounds).
SIDE_EFFECT_AREA: tuple[float, float] = (0.005, 0.03)
#: Pixels between a side effect's changed pixels and the intended mask; above the
#: faithfulness split's default intent dilation (5 px) with room for feathering.
SIDE_EFFECT_MARGIN = 16
#: Placements tried before an item is left without a side effect (a large intended
#: region leaves no room).
PLACEMENT_ATTEMPTS = 40


@dataclass
class SideEffect:
    edited: np.ndarray
    mask: np.ndarray
    kind: str


def side_effect_generator(seed: int, index: int) -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, index, SIDE_EFFECT_STREAM]))
    )


def _place_blob(forbidden: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A blob of :data:`SIDE_EFFECT_AREA` that does not touch ``forbidden``."""
    height, width = forbidden.shape
    for _ in range(PLACEMENT_ATTEMPTS):
        area = rng.uniform(*SIDE_EFFECT_AREA) * height * width
        aspect = rng.uniform(0.6, 1.6)
        rx = min(math.sqrt(area / math.pi * aspect), 0.3 * width)
        ry = min(area / (math.pi * rx), 0.3 * height)
        if rx < 3 or ry < 3:
            continue
        center = (rng.uniform(rx, width - rx), rng.uniform(ry, height - ry))
        blob = _blob((height, width), center, (rx, ry), rng, angle=rng.uniform(0.0, math.pi))
        if blob.any() and not (blob & forbidden).any():
            return blob
    return None


def _colour_shift(image: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[:, :, 0] = (hsv[:, :, 0] + int(rng.integers(30, 150))) % 180  # OpenCV hue: 0-179
    hsv[:, :, 1] = np.maximum(hsv[:, :, 1], 90)  # grey content gets a visible colour
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] * rng.uniform(0.75, 1.25), 0, 255)
    shifted = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return _composite(image, shifted, _feather(region, rng))


def _paste_elsewhere(image: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The blob's pixels replaced by those of the same-shaped window somewhere else."""
    height, width = image.shape[:2]
    ys, xs = np.nonzero(region)
    y0, x0, y1, x1 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    sy = int(rng.integers(0, max(1, height - (y1 - y0))))
    sx = int(rng.integers(0, max(1, width - (x1 - x0))))
    patch = image[sy : sy + (y1 - y0), sx : sx + (x1 - x0)]
    edited, _ = _paste(image, patch, region[y0:y1, x0:x1], (int(x0), int(y0)), rng)
    return edited


def add_side_effect(
    image: np.ndarray, intended: np.ndarray, rng: np.random.Generator
) -> SideEffect | None:
    """``image`` (the intended edit's result) with one unasked edit away from
    ``intended``, and the side effect's own mask; None when no placement fits."""
    kernel = cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * SIDE_EFFECT_MARGIN + 1, 2 * SIDE_EFFECT_MARGIN + 1)
    )
    forbidden = cv2.dilate(intended.astype(np.uint8), kernel).astype(bool)
    kind = SIDE_EFFECT_KINDS[int(rng.integers(len(SIDE_EFFECT_KINDS)))]
    for _ in range(4):
        region = _place_blob(forbidden, rng)
        if region is None:
            return None
        if kind == "colour shift":
            edited = _colour_shift(image, region, rng)
        elif kind == "paste":
            edited = _paste_elsewhere(image, region, rng)
        else:
            edited = _inpaint(image, region, rng)
        changed = np.any(edited != image, axis=2)
        # Feathering and inpainting reach a few pixels past the blob; the margin keeps
        # them off the intended region, and anything that would touch it is undone.
        changed &= ~forbidden
        if changed.any():
            edited = np.where(changed[:, :, None], edited, image)
            return SideEffect(edited, changed, kind)
    return None
