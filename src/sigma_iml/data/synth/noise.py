"""Re-synthesis noise: the degradation a diffusion editor applies to every pixel."""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
from PIL import Image


def resynthesis_noise(
    image: np.ndarray, level: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """``image`` degraded the way a diffusion editor's re-synthesis touches every pixel,
    and the parameters used. ``level`` 0 returns the image unchanged; 1 is strong but
    realistic; larger values go further (parameters are clamped to stay plausible):

    - colour drift: per-channel gain ``1 +- 0.02 * level`` and offset ``+- 2 * level``
      grey levels (standard deviations);
    - resampling: down by a factor ``1 - U(0.15, 0.4) * min(level, 1)``, back up with a
      random interpolation (bilinear or bicubic);
    - sub-pixel shift: ``U(-0.5, 0.5) * min(level, 1)`` px on each axis (bilinear);
    - JPEG re-encoding at quality ``97 - 27 * level +- 3``, clamped to [40, 98].
    """
    if level == 0:
        return image, {}
    height, width = image.shape[:2]
    strength = min(level, 1.0)
    gain = 1.0 + rng.normal(0.0, 0.02 * level, 3)
    offset = rng.normal(0.0, 2.0 * level, 3)
    noisy = image.astype(np.float32) * gain.astype(np.float32) + offset.astype(np.float32)
    noisy = np.clip(noisy, 0, 255)

    factor = 1.0 - rng.uniform(0.15, 0.4) * strength
    small = (max(8, int(round(width * factor))), max(8, int(round(height * factor))))
    upsample = cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_LINEAR
    noisy = cv2.resize(
        cv2.resize(noisy, small, interpolation=cv2.INTER_AREA),
        (width, height),
        interpolation=upsample,
    )

    shift = rng.uniform(-0.5, 0.5, 2) * strength
    warp = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]], np.float32)
    noisy = cv2.warpAffine(
        noisy, warp, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )

    quality = int(np.clip(round(97.0 - 27.0 * level + rng.uniform(-3.0, 3.0)), 40, 98))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=quality
    )
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        result = np.asarray(decoded.convert("RGB")).copy()
    params = {
        "color_gain": [round(float(g), 5) for g in gain],
        "color_offset": [round(float(o), 4) for o in offset],
        "resample_factor": round(float(factor), 5),
        "upsample": "bicubic" if upsample == cv2.INTER_CUBIC else "bilinear",
        "shift_px": [round(float(s), 5) for s in shift],
        "jpeg_quality": quality,
    }
    return result, params
