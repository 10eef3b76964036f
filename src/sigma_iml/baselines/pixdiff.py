"""The paper's pixel-difference baselines (Table 1 rows), no learning.

All three work at a square working resolution (518, SIGMA's input size, by default):
both images are resized bilinearly to it, the binary mask is computed there, and the
mask is resized back to the edited image's size for annotation (evaluation at
``--resolution 518`` scores at the working resolution directly).

- ``pixdiff-fixed`` — ``max`` over RGB of ``|edited - original|`` in [0, 1], ``> tau``.
- ``pixdiff-morph`` — the same, then a 5x5 opening and a 5x5 closing (paper §4.1).
- ``pixdiff-otsu`` — OpenCV's Otsu threshold on the uint8 mean-over-RGB difference.

The paper's five tau values were lost in its text; ``tau`` is a parameter. The channel
reduction of ``pixdiff-fixed`` is the issue's ``max``; ``reduce=mean`` is docs/design.md's
reading, kept selectable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image

from ..data.pair import Pair, resize_rgb
from ..errors import ConfigError
from ..methods import METHODS, MaskMethod, Prediction

#: SIGMA's input size (paper §3.2.1), used as the baselines' working resolution.
WORKING_RESOLUTION = 518


#: The largest square working resolution: 8192² is 67 megapixels, under Pillow's image
#: limit (89.5 MP), and a pair at it already takes a few GB as float maps; 999999 asked
#: for terabytes and was killed by the kernel.
MAX_RESOLUTION = 8192


def _working_pair(pair: Pair, resolution: int | None) -> tuple[np.ndarray, np.ndarray]:
    if resolution is None:
        return pair.original, pair.edited
    size = (resolution, resolution)
    return resize_rgb(pair.original, size), resize_rgb(pair.edited, size)


def abs_difference(
    original: np.ndarray, edited: np.ndarray, reduce: Literal["max", "mean"]
) -> np.ndarray:
    """Per-pixel ``|edited - original|`` reduced over RGB, in [0, 1] (float32)."""
    diff = np.abs(edited.astype(np.int16) - original.astype(np.int16))
    reduced = diff.max(axis=2) if reduce == "max" else diff.mean(axis=2)
    return reduced.astype(np.float32) / 255.0


def _to_edited_size(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A binary working-resolution mask as float32 {0, 1} at ``size`` (nearest)."""
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        mask = (
            np.asarray(
                Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
            )
            > 127
        )
    return mask.astype(np.float32)


def _parse_resolution(resolution: int | str) -> int | None:
    if isinstance(resolution, str):
        if resolution == "native":
            return None
        try:
            resolution = int(resolution)
        except ValueError:
            raise ConfigError(
                f"resolution must be a positive integer or 'native', got {resolution!r}"
            ) from None
    if resolution <= 0:
        raise ConfigError(f"resolution must be positive, got {resolution}")
    if resolution > MAX_RESOLUTION:
        raise ConfigError(
            f"resolution {resolution} is above the largest working resolution, "
            f"{MAX_RESOLUTION}; use 'native' to work at each image's own size"
        )
    return resolution


class _PixelDifference(MaskMethod):
    batch_size = 8

    def __init__(self, resolution: int | str = WORKING_RESOLUTION):
        self.resolution = _parse_resolution(resolution)

    def _mask(self, original: np.ndarray, edited: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def predict_batch(self, pairs: Sequence[Pair]) -> list[Prediction]:
        predictions = []
        for pair in pairs:
            original, edited = _working_pair(pair, self.resolution)
            mask, extras = self._mask(original, edited)
            predictions.append(Prediction(_to_edited_size(mask, pair.size), extras))
        return predictions

    def params(self) -> dict[str, Any]:
        return {"resolution": self.resolution or "native"}


@METHODS.register("pixdiff-fixed")
class PixDiffFixed(_PixelDifference):
    """Fixed threshold on the per-pixel RGB difference (paper's PixDiff-Fixed)."""

    name = "pixdiff-fixed"

    def __init__(
        self,
        tau: float = 0.05,
        reduce: Literal["max", "mean"] = "max",
        resolution: int | str = WORKING_RESOLUTION,
    ):
        super().__init__(resolution)
        if not 0.0 <= tau < 1.0:
            raise ConfigError(f"tau must be in [0, 1), got {tau}")
        self.tau = float(tau)
        self.reduce = reduce

    def _mask(self, original, edited):
        return abs_difference(original, edited, self.reduce) > self.tau, {}

    def params(self) -> dict[str, Any]:
        return {"tau": self.tau, "reduce": self.reduce, **super().params()}


@METHODS.register("pixdiff-morph")
class PixDiffMorph(PixDiffFixed):
    """PixDiff-Fixed, then a 5x5 opening and a 5x5 closing (paper's PixDiff-Fixed-morph)."""

    name = "pixdiff-morph"

    def __init__(
        self,
        tau: float = 0.2,
        kernel: int = 5,
        reduce: Literal["max", "mean"] = "max",
        resolution: int | str = WORKING_RESOLUTION,
    ):
        super().__init__(tau=tau, reduce=reduce, resolution=resolution)
        if kernel < 1:
            raise ConfigError(f"kernel must be >= 1, got {kernel}")
        self.kernel = int(kernel)

    def _mask(self, original, edited):
        binary, _ = super()._mask(original, edited)
        element = cv2.getStructuringElement(cv2.MORPH_RECT, (self.kernel, self.kernel))
        opened = cv2.morphologyEx(binary.astype(np.uint8), cv2.MORPH_OPEN, element)
        closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, element)
        return closed.astype(bool), {}

    def params(self) -> dict[str, Any]:
        return {**super().params(), "kernel": self.kernel}


@METHODS.register("pixdiff-otsu")
class PixDiffOtsu(_PixelDifference):
    """Otsu's automatic threshold on the mean-over-RGB difference (paper's PixDiff-Otsu)."""

    name = "pixdiff-otsu"

    def _mask(self, original, edited):
        diff = np.abs(edited.astype(np.int16) - original.astype(np.int16)).mean(axis=2)
        diff_u8 = np.clip(np.rint(diff), 0, 255).astype(np.uint8)
        threshold, binary = cv2.threshold(diff_u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return binary > 0, {"otsu_threshold": float(threshold) / 255.0}
