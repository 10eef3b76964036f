"""The ``folder`` format: ``original/``, ``edited/``, optional ``mask/`` paired by file
stem, and an optional ``instructions.jsonl`` (``{"id": ..., "instruction": ...}`` per
line).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ...errors import ManifestError
from ..pair import PairRef
from .base import register_format
from .manifest import manifest_rows

#: File extensions taken as images when listing folders (case-insensitive).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".jfif", ".ppm", ".pgm"}
)
#: Suffixes a mask file's stem may carry in a folder dataset (``cat.png`` -> ``cat_mask.png``).
MASK_STEM_SUFFIXES = ("", "_mask", "_gt", "-mask", "_m")


def images_by_stem(folder: Path) -> dict[str, Path]:
    """Stem -> path of the image files in ``folder`` (names only: no file is opened)."""
    found: dict[str, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            suffix = os.path.splitext(entry.name)[1].lower()
            if suffix in IMAGE_EXTENSIONS and entry.is_file():
                stem = os.path.splitext(entry.name)[0]
                found[stem] = Path(entry.path)
    return found


def _read_instructions(path: Path) -> dict[str, str]:
    instructions: dict[str, str] = {}
    for line, row in manifest_rows(path):
        if isinstance(row, str):
            raise ManifestError(row, source=f"{path.name}:{line}")
        if "id" not in row or "instruction" not in row:
            raise ManifestError(
                "each line needs 'id' and 'instruction'", source=f"{path.name}:{line}"
            )
        instructions[str(row["id"])] = str(row["instruction"])
    return instructions


def iter_folder(path: str | os.PathLike) -> Iterator[PairRef]:
    """Stream a folder with ``original/``, ``edited/`` and optional ``mask/``.

    Files are paired by stem (never by sorting two listings side by side, which breaks
    on one stray file). Every edited image gives one item, in sorted stem order; one
    without an original becomes an invalid item naming the missing file; a mask may be
    named ``<stem>`` or ``<stem>_mask``/``_gt``. Only file names are held in memory."""
    root = Path(path)
    edited_dir, original_dir, mask_dir = root / "edited", root / "original", root / "mask"
    for required in (edited_dir, original_dir):
        if not required.is_dir():
            raise ManifestError(
                f"folder dataset needs a {required.name}/ subfolder", source=str(root)
            )
    originals = images_by_stem(original_dir)
    masks = images_by_stem(mask_dir) if mask_dir.is_dir() else {}
    instructions_file = root / "instructions.jsonl"
    instructions = _read_instructions(instructions_file) if instructions_file.is_file() else {}
    edited = images_by_stem(edited_dir)
    for stem in sorted(edited):
        where = f"{edited_dir.name}/{edited[stem].name}"
        original = originals.get(stem)
        if original is None:
            yield PairRef.invalid(
                stem, f"no original image named {stem}.* in {original_dir}", source=where
            )
            continue
        mask = next((masks[stem + s] for s in MASK_STEM_SUFFIXES if stem + s in masks), None)
        yield PairRef(
            id=stem,
            original=original,
            edited=edited[stem],
            instruction=instructions.get(stem),
            mask=mask,
            source=where,
        )


def looks_like_folder(path: Path) -> bool:
    return path.is_dir() and (path / "original").is_dir() and (path / "edited").is_dir()


register_format(
    "folder",
    iter_folder,
    looks_like_folder,
    "folder with original/, edited/, optional mask/ and instructions.jsonl, paired by file stem",
)
