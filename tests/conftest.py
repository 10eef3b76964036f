"""Shared fixtures: small generated datasets, written fresh into a temp folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# A failed hub look-up retries for ~30 s before it errors: tests never reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _textured(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random RGB image (not flat, not white noise)."""
    small = rng.integers(0, 256, size=(max(height // 8, 2), max(width // 8, 2), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def write_pair_files(
    root: Path, item: str, rng: np.random.Generator, size: tuple[int, int] = (48, 40)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """original/, edited/, mask/ PNGs of one pair whose edit is a filled rectangle."""
    width, height = size
    original = _textured(rng, height, width)
    edited = original.copy()
    mask = np.zeros((height, width), dtype=bool)
    y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    y1, x1 = y0 + int(rng.integers(4, height // 2)), x0 + int(rng.integers(4, width // 2))
    mask[y0:y1, x0:x1] = True
    edited[mask] = (255 - edited[mask].astype(np.int16)).clip(0, 255).astype(np.uint8) // 2 + 100
    mask = np.any(edited != original, axis=2)  # exact support of the change
    for folder, array in (
        ("original", original),
        ("edited", edited),
        ("mask", mask.astype(np.uint8) * 255),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(root / folder / f"{item}.png")
    return original, edited, mask


@pytest.fixture
def make_dataset(tmp_path: Path):
    """Factory: a manifest dataset of ``n`` pairs; returns the manifest path."""

    def build(
        n: int = 4, seed: int = 0, size: tuple[int, int] = (48, 40), name: str = "ds"
    ) -> Path:
        root = tmp_path / name
        rng = np.random.default_rng(seed)
        rows = []
        for index in range(n):
            item = f"pair{index:03d}"
            write_pair_files(root, item, rng, size)
            rows.append(
                {
                    "id": item,
                    "original": f"original/{item}.png",
                    "edited": f"edited/{item}.png",
                    "mask": f"mask/{item}.png",
                    "instruction": f"remove the object {index}",
                }
            )
        manifest = root / "manifest.jsonl"
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return manifest

    return build


@pytest.fixture
def cocoglide_dev() -> Path:
    path = SHARED_DATA / "cocoglide-dev"
    if not (path / "manifest.jsonl").is_file():
        pytest.skip("shared/data/cocoglide-dev is not present")
    return path
