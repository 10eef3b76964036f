"""Synchronized augmentation: one random draw applied identically to every image of a
pair (original, edited, and Stage II's noise partner) and to its mask (paper §4.1:
"synchronized random horizontal flipping and random cropping, applied identically to
both images in each input pair").

Images stay uint8 RGB ``(H, W, 3)`` in [0, 255] and become ``(3, H, W)`` floats in
[0, 1]: ImageNet normalisation is the backbone's job (``DinoBackbone.forward``
normalises with the configured mean and std), so it is not done here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.pair import resize_mask, resize_rgb
from .config import AugmentConfig


@dataclass(frozen=True)
class AugmentDraw:
    """One random draw: the crop window ``(top, left, height, width)`` in pixels of the
    input and whether to flip horizontally (after cropping)."""

    top: int
    left: int
    height: int
    width: int
    flip: bool

    @classmethod
    def identity(cls, height: int, width: int) -> AugmentDraw:
        return cls(0, 0, height, width, False)


def draw_augmentation(
    shape: tuple[int, int], config: AugmentConfig, rng: np.random.Generator
) -> AugmentDraw:
    """A crop window inside an image of ``shape`` ``(H, W)`` and a flip decision."""
    height, width = shape
    low, high = config.crop_scale
    crop_h = max(1, min(height, int(round(height * rng.uniform(low, high)))))
    crop_w = max(1, min(width, int(round(width * rng.uniform(low, high)))))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    flip = bool(rng.random() < config.hflip_probability)
    return AugmentDraw(top, left, crop_h, crop_w, flip)


def _window(array: np.ndarray, draw: AugmentDraw) -> np.ndarray:
    cropped = array[draw.top : draw.top + draw.height, draw.left : draw.left + draw.width]
    return cropped[:, ::-1] if draw.flip else cropped


def apply_augmentation(
    images: Sequence[np.ndarray],
    mask: np.ndarray | None,
    draw: AugmentDraw,
    size: tuple[int, int],
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Crop and flip every image and the mask the same way, then resize to ``size``
    ``(height, width)``: images bilinear (antialiased when shrinking, as at inference),
    the mask nearest, so it stays exactly binary."""
    target = (size[1], size[0])  # PIL order (width, height)
    shape = images[0].shape[:2]
    for image in images:
        if image.shape[:2] != shape:
            raise ValueError(f"images of one pair differ in size: {image.shape} vs {shape}")
    out_images = [resize_rgb(np.ascontiguousarray(_window(im, draw)), target) for im in images]
    out_mask = None
    if mask is not None:
        if mask.shape != shape:
            raise ValueError(f"mask {mask.shape} differs from the images {shape}")
        out_mask = resize_mask(np.ascontiguousarray(_window(mask, draw)), target)
    return out_images, out_mask


def apply_to_map(values: np.ndarray, draw: AugmentDraw, size: tuple[int, int]) -> np.ndarray:
    """The same crop and flip for a float map (e.g. an instruction prior) of the images'
    size, then a bilinear resize to ``size`` ``(height, width)``."""
    from .priors import resize_prior

    return resize_prior(np.ascontiguousarray(_window(values, draw)), size)


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 to ``(3, H, W)`` float32 in [0, 1] (not normalised)."""
    # np.require copies read-only arrays (Pillow's), which torch cannot wrap safely.
    array = np.require(image, requirements=["C", "W"])
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def mask_tensor(mask: np.ndarray) -> torch.Tensor:
    """``(H, W)`` bool to ``(1, H, W)`` float32 {0, 1}."""
    return torch.from_numpy(np.require(mask, requirements=["C", "W"])).float()[None]
