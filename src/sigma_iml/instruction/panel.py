"""A picture of the instruction branch for one pair (the paper's Fig. 7).

One row: original image, ``A_o`` over it, edited image, ``A_e`` over it, the intent map
``P`` and the final mask, each tile titled, the instruction and tuple written above.
Drawn with Pillow (a core dependency) and saved as PNG. It is a figure for people: the
mask proper is written separately, losslessly and at the image's size.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.io import atomic_write_bytes
from ..data.pair import Pair
from .branch import InstructionResult

#: Height of a tile in pixels; widths follow the edited image's aspect ratio.
TILE_HEIGHT = 256
_TITLE = 18
_HEADER = 40


def _heat(values: np.ndarray) -> np.ndarray:
    """[0, 1] → RGB uint8 on a black-red-yellow-white ramp (readable in print)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], -1)
    return (rgb * 255).astype(np.uint8)


def _tile(array: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(array).convert("RGB").resize(size, Image.Resampling.BILINEAR)


def _overlay(image: np.ndarray, values: np.ndarray, size: tuple[int, int]) -> Image.Image:
    base = _tile(image, size)
    heat = _tile(_heat(values), size)
    return Image.blend(base, heat, 0.55)


def save_instruction_panel(
    path: str | Path, pair: Pair, result: InstructionResult, mask: np.ndarray | None = None
) -> Path:
    """Write the panel of ``pair``'s instruction branch ``result`` (and ``mask``, the
    network's final bool or [0, 1] mask, when given) to ``path`` (PNG), atomically."""
    height, width = pair.edited.shape[:2]
    size = (max(1, round(TILE_HEIGHT * width / height)), TILE_HEIGHT)
    tiles = [
        ("original", _tile(pair.original, size)),
        (
            f"A_o: {result.edit.original_concept}",
            _overlay(pair.original, result.original_map, size),
        ),
        ("edited", _tile(pair.edited, size)),
        (f"A_e: {result.edit.edited_concept}", _overlay(pair.edited, result.edited_map, size)),
        (f"P ({result.edit.action})", _tile(_heat(result.intent_map), size)),
    ]
    if mask is not None:
        tiles.append(
            ("mask", _tile((np.asarray(mask, dtype=np.float32) * 255).astype(np.uint8), size))
        )
    canvas = Image.new(
        "RGB", (size[0] * len(tiles), _HEADER + _TITLE + size[1]), color=(255, 255, 255)
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text(
        (4, 4), f"{pair.id}: {pair.instruction or '(no instruction)'}", fill=(0, 0, 0), font=font
    )
    draw.text(
        (4, 22), f"tuple {result.edit}  via {result.parse.method}", fill=(60, 60, 60), font=font
    )
    for index, (title, tile) in enumerate(tiles):
        x = index * size[0]
        draw.text((x + 4, _HEADER + 2), title[:48], fill=(0, 0, 0), font=font)
        canvas.paste(tile, (x, _HEADER + _TITLE))
    path = Path(path)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path
