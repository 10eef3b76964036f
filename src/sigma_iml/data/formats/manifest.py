"""The ``manifest`` format: JSONL or CSV rows with ``id, original, edited, instruction,
mask``, paths relative to the manifest's folder (the layout ``sigma-iml make-pairs``
writes, and that of ``shared/data/cocoglide-dev``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import ManifestError
from ..io import open_text
from ..pair import PairRef
from .base import register_format, resolve_inside

#: The file names a folder's manifest may have, in the order they are looked for.
MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")


def manifest_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row dict or a parse-error message), streamed."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open_text(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                return
            for row in reader:
                line = reader.line_num
                if None in row:  # more cells than header columns
                    yield (
                        line,
                        f"row has {len(reader.fieldnames) + len(row[None])} cells but the header has {len(reader.fieldnames)}",
                    )
                    continue
                yield line, {k: v for k, v in row.items() if k is not None}
        return
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                yield number, f"invalid JSON: {err.msg} at column {err.colno}"
                continue
            if not isinstance(row, dict):
                yield number, f"expected a JSON object, got {type(row).__name__}"
                continue
            yield number, row


#: Optional mask columns besides the ground truth ``mask``, kept on the
#: :class:`PairRef` under the same names: ``intended_mask`` (the region the edit was
#: meant to change: faithfulness) and the concept regions (training's ``priors: masks``).
EXTRA_MASKS = ("intended_mask", "original_concept_mask", "edited_concept_mask")


def iter_manifest(
    path: str | os.PathLike, *, root: str | os.PathLike | None = None
) -> Iterator[PairRef]:
    """Stream a JSONL or CSV manifest. Paths are relative to ``root`` (default: the
    manifest's folder) and may not leave it. ``instruction``, ``mask`` and the masks of
    :data:`EXTRA_MASKS` are optional (empty string or null = absent); ``id`` defaults to
    the edited file's stem. Extra fields go to ``PairRef.meta``."""
    manifest = Path(path)
    if not manifest.is_file():
        raise ManifestError("manifest not found", source=str(manifest))
    base = Path(root) if root is not None else manifest.parent
    for line, row in manifest_rows(manifest):
        where = f"{manifest.name}:{line}"
        if isinstance(row, str):
            yield PairRef.invalid(where, row, source=where)
            continue
        raw_id = row.get("id")
        item = str(raw_id).strip() if raw_id not in (None, "") else None
        try:
            if "edited" not in row or row.get("edited") in (None, ""):
                raise ManifestError(
                    "missing required field 'edited'", item=item or where, source=where
                )
            if "original" not in row or row.get("original") in (None, ""):
                raise ManifestError(
                    "missing required field 'original'", item=item or where, source=where
                )
            edited = resolve_inside(
                base, row["edited"], item=item or where, field="edited", source=where
            )
            item = item or edited.stem
            original = resolve_inside(
                base, row["original"], item=item, field="original", source=where
            )
            mask_value = row.get("mask")
            mask = None
            if mask_value not in (None, ""):
                mask = resolve_inside(base, mask_value, item=item, field="mask", source=where)
            # Optional masks beside the ground truth, each resolved like ``mask``.
            extra_masks = {
                name: resolve_inside(base, row[name], item=item, field=name, source=where)
                for name in EXTRA_MASKS
                if row.get(name) not in (None, "")
            }
            instruction = row.get("instruction")
            if instruction is not None and not isinstance(instruction, str):
                raise ManifestError(
                    f"field 'instruction' must be a string, got {type(instruction).__name__}",
                    item=item,
                    source=where,
                )
        except ManifestError as err:
            yield PairRef.invalid(err.item or where, err.reason, source=where)
            continue
        meta = {
            k: v
            for k, v in row.items()
            if k not in ("id", "original", "edited", "mask", "instruction", *EXTRA_MASKS)
        }
        yield PairRef(
            id=item,
            original=original,
            edited=edited,
            instruction=(instruction or None),
            mask=mask,
            source=where,
            meta=meta,
            **extra_masks,
        )


def find_manifest(path: Path) -> Path | None:
    """``path`` itself when it is a ``.jsonl``/``.csv`` file, else the manifest in the
    folder ``path`` (see :data:`MANIFEST_NAMES`), else ``None``."""
    if path.is_file() and path.suffix.lower() in (".jsonl", ".csv"):
        return path
    if path.is_dir():
        for name in MANIFEST_NAMES:
            if (path / name).is_file():
                return path / name
    return None


def read_manifest_path(path: Path, **options: Any) -> Iterator[PairRef]:
    """:func:`iter_manifest` of a manifest file, or of the manifest in a folder."""
    manifest = find_manifest(path)
    if manifest is None:
        raise ManifestError(f"no manifest ({' or '.join(MANIFEST_NAMES)}) found", source=str(path))
    return iter_manifest(manifest, **options)


def looks_like_manifest(path: Path) -> bool:
    return find_manifest(path) is not None


def count_manifest(path: Path, **options: Any) -> int:
    """How many items :func:`read_manifest_path` yields: the rows, counted by reading the
    text once without decoding a row (the progress bar's total)."""
    manifest = find_manifest(path)
    if manifest is None:
        raise ManifestError(f"no manifest ({' or '.join(MANIFEST_NAMES)}) found", source=str(path))
    if manifest.suffix.lower() == ".csv":
        with manifest.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            return max(0, sum(1 for _ in reader) - 1)  # less the header
    with manifest.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


register_format(
    "manifest",
    read_manifest_path,
    looks_like_manifest,
    "JSONL/CSV manifest (id, original, edited, instruction, mask), or a folder holding manifest.jsonl/.csv",
    count=count_manifest,
)
