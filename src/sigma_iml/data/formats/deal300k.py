"""The ``deal300k`` format: DEAL-300K, one of the SIGMA paper's evaluation benchmarks, in
the folder layout we assume for its published archives (``docs/benchmarks.md``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from ...errors import DataError
from ..io import read_text
from ..pair import PairRef
from .base import UniqueIds, register_format

_DEAL_EDITED = re.compile(r"(?P<image_id>\d+)_qwen(?P<checkpoint>\d+)")
_DEAL_INSTRUCTIONS = re.compile(r"checkpoint-(?P<checkpoint>\d+)_(?P<split>[a-z]+)_results\.json")


def _deal_instructions(root: Path, split: str) -> dict[tuple[str, str], str]:
    """``{(checkpoint, image file name): instruction}`` from
    ``instructions/checkpoint-<n>_<split>_results.json`` (a list of
    ``{"image_name", "generated_text"}``)."""
    table: dict[tuple[str, str], str] = {}
    folder = root / "instructions"
    if not folder.is_dir():
        return table
    for file in sorted(folder.glob("checkpoint-*_results.json")):
        match = _DEAL_INSTRUCTIONS.fullmatch(file.name)
        if match is None or match.group("split") != split:
            continue
        try:
            records = json.loads(read_text(file))
        except (OSError, ValueError, DataError):
            continue
        for record in records if isinstance(records, list) else []:
            if (
                isinstance(record, dict)
                and record.get("image_name")
                and record.get("generated_text")
            ):
                key = (match.group("checkpoint"), str(record["image_name"]))
                table[key] = str(record["generated_text"]).strip()
    return table


def _first_existing(candidates: list[Path]) -> Path:
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]  # none exists: load_pair reports the expected location


def iter_deal300k(
    path: Path,
    *,
    split: str = "test",
    original_dir: Path | None = None,
    require_instruction: bool = True,
) -> Iterator[PairRef]:
    """DEAL-300K (Zhang et al., arXiv 2511.23377; github.com/ymhzyj/DEAL-300K).

    Published: ``train.zip``, ``val.zip``, ``test.zip`` (images), ``label.zip`` (masks) on
    OneDrive, and in the GitHub repository
    ``instructions/checkpoint-<120|180>_<split>_results.json``, lists of
    ``{"image_name": "<coco id>.jpg", "generated_text": <instruction>}``. The repository's
    examples name the original ``<coco id>.jpg`` (MS COCO), the InstructPix2Pix result
    ``<coco id>_qwen<checkpoint>.jpg`` and its mask ``<coco id>_qwen<checkpoint>.png``.

    ASSUMED folder layout (the inside of the zips is not documented), ``path`` being the
    folder the zips were extracted into, with the repository's ``instructions/``::

        instructions/checkpoint-<n>_<split>_results.json
        <split>/<coco id>_qwen<n>.jpg       edited (listed; other files are skipped)
        label/[<split>/]<coco id>_qwen<n>.png    mask, white = edited; also looked for
                                                 next to the edited image
        original: ``original_dir/<coco id>.jpg`` if given, else ``<split>/<coco id>.jpg``,
                  else ``original/<coco id>.jpg``

    The first existing candidate is used; when none exists the first is kept and
    loading reports it missing. The instruction is the one of the same checkpoint and
    COCO image; without one the ref is invalid unless ``require_instruction=False``.
    Ids are ``deal300k_<split>_<coco id>_qwen<n>``.
    """
    root = Path(path)
    edited_dir = root / split
    instructions = _deal_instructions(root, split)
    ids = UniqueIds()
    names = sorted(entry.name for entry in os.scandir(edited_dir) if entry.is_file())
    for name in names:
        stem, extension = os.path.splitext(name)
        match = _DEAL_EDITED.fullmatch(stem)
        if match is None or extension.lower() not in (".jpg", ".jpeg"):
            continue  # originals (<coco id>.jpg) and masks (.png) may share the folder
        image_id, checkpoint = match.group("image_id"), match.group("checkpoint")
        item_id = f"deal300k_{split}_{stem}"
        source = str(edited_dir / name)
        text = instructions.get((checkpoint, f"{image_id}.jpg"))
        if text is None and require_instruction:
            yield ids.check(
                PairRef.invalid(
                    item_id,
                    f"{name}: no instruction for {image_id}.jpg in "
                    f"instructions/checkpoint-{checkpoint}_{split}_results.json",
                    source,
                )
            )
            continue
        original_candidates = [
            edited_dir / f"{image_id}.jpg",
            root / "original" / f"{image_id}.jpg",
        ]
        if original_dir is not None:
            original_candidates.insert(0, Path(original_dir) / f"{image_id}.jpg")
        mask_candidates = [
            root / "label" / split / f"{stem}.png",
            root / "label" / f"{stem}.png",
            edited_dir / f"{stem}.png",
        ]
        yield ids.check(
            PairRef(
                id=item_id,
                original=_first_existing(original_candidates),
                edited=edited_dir / name,
                instruction=text,
                mask=_first_existing(mask_candidates),
                source=source,
                meta={"benchmark": "deal300k", "coco_id": image_id, "checkpoint": int(checkpoint)},
            )
        )


def looks_like_deal300k(path: Path) -> bool:
    root = Path(path)
    if any(_DEAL_INSTRUCTIONS.fullmatch(f.name) for f in root.glob("instructions/*.json")):
        return True
    for split in ("train", "val", "test"):
        if any(root.glob(f"{split}/*_qwen*.jpg")):
            return True
    return False


register_format("deal300k", iter_deal300k, looks_like_deal300k)
