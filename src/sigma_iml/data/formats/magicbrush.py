"""The ``magicbrush`` format: MagicBrush, one of the SIGMA paper's evaluation benchmarks,
as the Hugging Face parquet dataset (``docs/benchmarks.md`` gives the sources).

Rows are streamed batch by batch and image bytes handed on without decoding, except the
brush mask, decoded per row to turn it into a ground-truth mask.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import ImageDecodeError
from ..images import EncodedImage, load_image
from ..io import ARCHIVE_PNG_LEVEL, encode_png, iter_parquet_rows
from ..pair import PairRef
from .base import UniqueIds, register_format
from .parquet import (
    file_problem,
    first_file_has_columns,
    required_image,
    row_source,
    split_files,
)

MAGICBRUSH_COLUMNS = ("img_id", "turn_index", "source_img", "mask_img", "instruction", "target_img")
MAGICBRUSH_MASK_RULES = ("auto", "alpha", "white")
#: A brush-mask pixel counts as painted when all three channels are at least this.
MAGICBRUSH_WHITE_LEVEL = 250


def magicbrush_edit_mask(mask_png: EncodedImage, rule: str = "auto") -> np.ndarray:
    """MagicBrush's ``mask_img`` (the region the annotator brushed for DALL-E 2) as a
    bool array, True = edited.

    - ``"alpha"``: DALL-E 2's own convention, transparent (alpha < 128) = edit here.
    - ``"white"``: the dataset card's "free-form mask image (white region)": a pixel is
      edited when R, G and B are all at least :data:`MAGICBRUSH_WHITE_LEVEL`. This holds
      whether the mask is black-and-white or the source photo with the brushed region
      painted white (a plain mean > 127.5 rule would mark every bright photo pixel).
    - ``"auto"``: ``"alpha"`` when the image has an alpha channel with any
      non-opaque pixel, else ``"white"``.
    """
    if rule not in MAGICBRUSH_MASK_RULES:
        raise ValueError(f"rule must be one of {MAGICBRUSH_MASK_RULES}, not {rule!r}")
    image = Image.open(io.BytesIO(mask_png.data))
    image.load()
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if rule in ("auto", "alpha") and has_alpha:
        alpha = np.asarray(image.convert("RGBA"))[:, :, 3]
        if rule == "alpha" or alpha.min() < 255:
            return alpha < 128
    if rule == "alpha":
        raise ImageDecodeError(
            "mask has no alpha channel for the 'alpha' rule", source=mask_png.name
        )
    rgb = load_image(mask_png)  # composites any alpha over white, applies EXIF
    return np.all(rgb >= MAGICBRUSH_WHITE_LEVEL, axis=2)


def iter_magicbrush(
    path: Path,
    *,
    split: str | None = None,
    mask_rule: str = "auto",
    first_turn_only: bool = False,
) -> Iterator[PairRef]:
    """MagicBrush (Zhang et al., NeurIPS 2023) as the Hugging Face dataset
    ``osunlp/MagicBrush``.

    Layout: ``path`` is the dataset folder (every ``*.parquet`` below it, e.g.
    ``data/train-000NN-of-00031-<hash>.parquet`` and ``data/dev-00000-of-00002-...``) or
    one parquet file. ``split`` keeps the shards named ``<split>-*``. Columns::

        img_id      string  COCO image id
        turn_index  int32   edit turn, from 1
        source_img  image   {"bytes", "path"}: the real photo at turn 1, the previous
                            turn's result after that
        mask_img    image   the free-form region the annotator brushed (white region)
        instruction string  the edit instruction
        target_img  image   the DALL-E 2 result

    Pairs are (source_img, target_img, instruction), so every turn is one pair; with
    ``first_turn_only`` only turn 1 (edits of real photos). The ground truth is the
    brushed region: DALL-E 2 regenerates exactly the region the annotator masked, the
    convention IML work on MagicBrush follows. ``mask_img`` is decoded per row and
    turned into a binary PNG by :func:`magicbrush_edit_mask` with ``mask_rule``; a
    mask that does not decode is passed on unchanged so loading reports it. Ids are
    ``magicbrush_<img_id>_t<turn_index>``. The password-protected test split (a zip
    of PNG files) is not this layout.
    """
    if mask_rule not in MAGICBRUSH_MASK_RULES:
        raise ValueError(f"mask_rule must be one of {MAGICBRUSH_MASK_RULES}, not {mask_rule!r}")
    ids = UniqueIds()
    files = split_files(Path(path), split)
    if not files:
        yield PairRef.invalid("magicbrush", f"no parquet files found under {path}", str(path))
        return
    for file in files:
        why = file_problem(file, MAGICBRUSH_COLUMNS)
        if why:
            yield ids.check(
                PairRef.invalid(f"magicbrush_file_{file.stem}", f"{file.name} {why}", str(file))
            )
            continue
        for row, record in iter_parquet_rows(file, list(MAGICBRUSH_COLUMNS)):
            ref = _magicbrush_ref(file, row, record, mask_rule, first_turn_only)
            if ref is not None:
                yield ids.check(ref)


def _magicbrush_ref(
    file: Path, row: int, record: dict[str, Any], mask_rule: str, first_turn_only: bool
) -> PairRef | None:
    source = row_source(file, row)
    image_id, turn = record.get("img_id"), record.get("turn_index")
    fallback_id = f"magicbrush_{file.stem}_row{row}"
    if image_id in (None, "") or turn is None:
        return PairRef.invalid(fallback_id, "img_id or turn_index is empty", source)
    if first_turn_only and int(turn) != 1:
        return None
    item_id = f"magicbrush_{image_id}_t{int(turn)}"
    instruction = record.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        return PairRef.invalid(item_id, "instruction is empty", source)
    images: dict[str, EncodedImage] = {}
    for column in ("source_img", "target_img", "mask_img"):
        encoded, why = required_image(record.get(column), file, row, column)
        if encoded is None:
            return PairRef.invalid(item_id, why, source)
        images[column] = encoded
    try:
        edited_region = magicbrush_edit_mask(images["mask_img"], mask_rule)
        mask = EncodedImage(
            # Archive level: shards may copy these bytes as they are.
            encode_png(edited_region, compress_level=ARCHIVE_PNG_LEVEL),
            name=f"{images['mask_img'].name} ({mask_rule} rule)",
        )
    except (OSError, ValueError, SyntaxError, ImageDecodeError):
        mask = images["mask_img"]  # undecodable: load_pair names the corrupt cell
    return PairRef(
        id=item_id,
        original=images["source_img"],
        edited=images["target_img"],
        instruction=instruction.strip(),
        mask=mask,
        # The brushed region is where the edit was asked for: the intent of
        # ``annotate --faithfulness --intent mask`` (docs/faithfulness.md).
        intended_mask=mask,
        source=source,
        meta={"benchmark": "magicbrush", "img_id": str(image_id), "turn_index": int(turn)},
    )


def looks_like_magicbrush(path: Path) -> bool:
    return first_file_has_columns(Path(path), MAGICBRUSH_COLUMNS)


register_format("magicbrush", iter_magicbrush, looks_like_magicbrush)
