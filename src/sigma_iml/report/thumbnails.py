"""Small images for the report gallery: photos as JPEG, masks and maps as PNG.

Everything is shrunk to at most ``max_side`` pixels on its longer side (never enlarged),
so a gallery of thousands of pairs stays light. Photos are resized bilinear, masks
nearest (they stay 0/255), maps are min-max scaled to grey.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.io import atomic_write_bytes, encode_png

DEFAULT_MAX_SIDE = 256
JPEG_QUALITY = 85

#: Overlay colours: correctly predicted, predicted but not edited, edited but missed.
TRUE_POSITIVE = (40, 200, 70)
FALSE_POSITIVE = (235, 50, 50)
FALSE_NEGATIVE = (40, 120, 255)
OVERLAY_ALPHA = 0.55


def thumbnail_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled so the longer side is at most ``max_side``."""
    width, height = size
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink_rgb(image: np.ndarray, max_side: int = DEFAULT_MAX_SIDE) -> np.ndarray:
    size = thumbnail_size((image.shape[1], image.shape[0]), max_side)
    if size == (image.shape[1], image.shape[0]):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def shrink_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask at ``(width, height)``, nearest."""
    if (mask.shape[1], mask.shape[0]) == size:
        return mask.astype(bool)
    image = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
    return np.asarray(image) > 127


def resize_grey(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 grey image at ``(width, height)``, bilinear."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def grey_map(values: np.ndarray) -> np.ndarray:
    """A float map min-max scaled to uint8 grey (a constant map is black)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32))
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if high - low <= 1e-12:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) / (high - low) * 255.0).astype(np.uint8)


def overlay(image: np.ndarray, predicted: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    """``image`` tinted where ``predicted``: green where also in ``truth``, red where not,
    blue where ``truth`` was missed. Without ``truth`` every prediction is red."""
    out = image.astype(np.float32)
    layers = []
    if truth is None:
        layers.append((predicted, FALSE_POSITIVE))
    else:
        layers += [
            (predicted & truth, TRUE_POSITIVE),
            (predicted & ~truth, FALSE_POSITIVE),
            (~predicted & truth, FALSE_NEGATIVE),
        ]
    for where, colour in layers:
        out[where] = (1 - OVERLAY_ALPHA) * out[where] + OVERLAY_ALPHA * np.array(colour)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def write_jpeg(path: Path, image: np.ndarray) -> None:
    atomic_write_bytes(path, encode_jpeg(image))


def write_grey_png(path: Path, image: np.ndarray) -> None:
    atomic_write_bytes(path, encode_png(image, compress_level=9))
