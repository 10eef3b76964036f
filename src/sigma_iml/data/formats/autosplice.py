"""The ``autosplice`` format: AutoSplice, one of the SIGMA paper's evaluation benchmarks,
in its published layout (``docs/benchmarks.md`` gives the sources)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import DataError
from ..io import read_text
from ..pair import PairRef
from .base import UniqueIds, register_format

_AUTOSPLICE_FORGED = re.compile(r"(?P<image_id>[^_]+)_(?P<variant>[^_]+)")
AUTOSPLICE_INSTRUCTIONS = ("edited_caption", "user_term")


def _autosplice_captions(folder: Path) -> dict[str, dict[str, Any]]:
    """``Caption/*.json`` by image id; small text files, read once up front."""
    captions: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return captions
    for file in sorted(folder.glob("*.json")):
        try:
            record = json.loads(read_text(file))
        except (OSError, ValueError, DataError):
            continue  # reported per pair as "no caption" rather than aborting the read
        if isinstance(record, dict) and "id" in record:
            captions[str(record["id"])] = record
    return captions


def _autosplice_instruction(caption: dict[str, Any], kind: str) -> str | None:
    original_term = caption.get("oriCaptionTerm")
    user_term = caption.get("userInputTerm")
    if kind == "user_term":
        return str(user_term).strip() if user_term else None
    original_caption = caption.get("ori_caption")
    if not (original_caption and original_term and user_term):
        return None
    text = str(original_caption)
    if str(original_term) not in text:
        return None
    return text.replace(str(original_term), str(user_term), 1).strip()


def iter_autosplice(
    path: Path,
    *,
    quality: int = 100,
    instruction: str = "edited_caption",
    require_instruction: bool = True,
) -> Iterator[PairRef]:
    """AutoSplice (Jia et al., CVPR Workshops 2023): DALL-E 2 edits of Visual News images.

    Layout (``path`` is the ``AutoSplice`` folder)::

        Authentic/<image id>.jpg                  original photo
        Forged_JPEG100/<image id>_<k>.jpg         edit k of that photo (also JPEG90, JPEG75)
        Mask/<image id>_mask.png                  edited region, white; shared by all k
        Caption/*.json                            {"id", "ori_caption", "oriCaptionTerm",
                                                   "userInputTerm", ...} per image id

    ``quality`` picks ``Forged_JPEG<quality>`` (100, 90 or 75). The instruction is the
    caption with the replaced term substituted (``instruction="edited_caption"``, our
    reading of how the DALL-E 2 prompt was formed) or just the new term
    (``"user_term"``). A forged image without a usable caption is an invalid ref unless
    ``require_instruction=False``. Authentic images are listed only as originals. Ids are
    ``autosplice_q<quality>_<image id>_<k>``.
    """
    if instruction not in AUTOSPLICE_INSTRUCTIONS:
        raise ValueError(
            f"instruction must be one of {AUTOSPLICE_INSTRUCTIONS}, not {instruction!r}"
        )
    root = Path(path)
    forged_dir = root / f"Forged_JPEG{quality}"
    captions = _autosplice_captions(root / "Caption")
    ids = UniqueIds()
    names = sorted(entry.name for entry in os.scandir(forged_dir) if entry.is_file())
    for name in names:
        stem, extension = os.path.splitext(name)
        if extension.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        source = str(forged_dir / name)
        match = _AUTOSPLICE_FORGED.fullmatch(stem)
        if match is None:
            yield ids.check(
                PairRef.invalid(
                    f"autosplice_q{quality}_{stem}",
                    f"forged file name {name!r} is not <image id>_<variant>",
                    source,
                )
            )
            continue
        image_id = match.group("image_id")
        item_id = f"autosplice_q{quality}_{stem}"
        text = None
        caption = captions.get(image_id)
        if caption is not None:
            text = _autosplice_instruction(caption, instruction)
        if text is None and require_instruction:
            why = (
                "no Caption/*.json with this id" if caption is None else "caption lacks the fields"
            )
            yield ids.check(
                PairRef.invalid(
                    item_id, f"{name}: no instruction for image id {image_id} ({why})", source
                )
            )
            continue
        yield ids.check(
            PairRef(
                id=item_id,
                original=root / "Authentic" / f"{image_id}.jpg",
                edited=forged_dir / name,
                instruction=text,
                mask=root / "Mask" / f"{image_id}_mask.png",
                source=source,
                meta={"benchmark": "autosplice", "image_id": image_id, "jpeg_quality": quality},
            )
        )


def looks_like_autosplice(path: Path) -> bool:
    root = Path(path)
    return (root / "Mask").is_dir() and any(root.glob("Forged_JPEG*"))


register_format("autosplice", iter_autosplice, looks_like_autosplice)
