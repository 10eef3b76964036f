"""Dataset readers: each streams :class:`~sigma_iml.data.pair.PairRef` items lazily.

Built-in formats:

- ``manifest`` — JSONL or CSV rows with ``id, original, edited, instruction, mask``,
  paths relative to the manifest's folder (the layout of ``shared/data/cocoglide-dev``).
- ``folder`` — ``original/``, ``edited/``, optional ``mask/`` paired by file stem, and an
  optional ``instructions.jsonl`` (``{"id": ..., "instruction": ...}`` per line).
- ``imdlbenco`` — IMDL-BenCo's JsonDataset list ``[[edited, mask | "Negative"], ...]``;
  a third element, when present, is the original image (IMDL-BenCo ignores it).

Other modules add formats (benchmarks, parquet corpora, WebDataset) to
:data:`DATASET_FORMATS`; :func:`open_dataset` picks one by sniffing the path.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ..errors import ConfigError, ManifestError
from .pair import PairRef

#: File extensions taken as images when listing folders (case-insensitive).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".jfif", ".ppm", ".pgm"}
)
#: Suffixes a mask file's stem may carry in a folder dataset (``cat.png`` -> ``cat_mask.png``).
MASK_STEM_SUFFIXES = ("", "_mask", "_gt", "-mask", "_m")

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")


def inside_dataset(root: Path, value: str) -> tuple[Path | None, str | None]:
    """``(root / value, None)`` when ``value`` stays inside ``root``, else ``(None, why)``.

    Dataset listings are untrusted: an absolute path or ``..`` could make a job read (and
    a report display) any file on the machine. The check is lexical, so a symlinked image
    folder inside the dataset is still allowed. Windows-style paths are checked too."""
    text = value.strip().replace("\\", "/") if isinstance(value, str) else ""
    if not text:
        return None, "empty path"
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).drive:
        return (
            None,
            f"path {value!r} is an absolute path; paths must be relative to the dataset folder",
        )
    normal = os.path.normpath(text)
    if normal == ".." or normal.startswith("../"):
        return None, f"path {value!r} escapes the dataset folder"
    return root / normal, None


def resolve_inside(root: Path, value: str, *, item: str, field: str, source: str) -> Path:
    """:func:`inside_dataset`, raising :class:`ManifestError` naming the field."""
    if not isinstance(value, str):
        raise ManifestError(f"field {field!r} is not a string", item=item, source=source)
    path, why = inside_dataset(root, value)
    if path is None:
        raise ManifestError(f"field {field!r}: {why} ({root})", item=item, source=source)
    return path


# --------------------------------------------------------------------------- manifest


def _manifest_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row dict or a parse-error message), streamed."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
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
    with path.open(encoding="utf-8") as handle:
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


def iter_manifest(
    path: str | os.PathLike, *, root: str | os.PathLike | None = None
) -> Iterator[PairRef]:
    """Stream a JSONL or CSV manifest. Paths are relative to ``root`` (default: the
    manifest's folder) and may not leave it. ``instruction`` and ``mask`` are optional
    (empty string = absent); ``id`` defaults to the edited file's stem. Extra fields go
    to ``PairRef.meta``."""
    manifest = Path(path)
    if not manifest.is_file():
        raise ManifestError("manifest not found", source=str(manifest))
    base = Path(root) if root is not None else manifest.parent
    for line, row in _manifest_rows(manifest):
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
            if k not in ("id", "original", "edited", "mask", "instruction")
        }
        yield PairRef(
            id=item,
            original=original,
            edited=edited,
            instruction=(instruction or None),
            mask=mask,
            source=where,
            meta=meta,
        )


# --------------------------------------------------------------------------- folder


def _images_by_stem(folder: Path) -> dict[str, Path]:
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
    for line, row in _manifest_rows(path):
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
    originals = _images_by_stem(original_dir)
    masks = _images_by_stem(mask_dir) if mask_dir.is_dir() else {}
    instructions_file = root / "instructions.jsonl"
    instructions = _read_instructions(instructions_file) if instructions_file.is_file() else {}
    edited = _images_by_stem(edited_dir)
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


# --------------------------------------------------------------------------- IMDL-BenCo


def iter_imdlbenco(
    path: str | os.PathLike, *, originals: str | os.PathLike | None = None
) -> Iterator[PairRef]:
    """Read IMDL-BenCo's JsonDataset list ``[[edited, mask | "Negative"], ...]``.

    Relative paths are taken relative to the JSON file's folder (IMDL-BenCo resolves
    them against its working directory; absolute paths, what it writes, mean the same
    in both). The original image comes from a third element of the row when present,
    else from ``originals/<edited stem>.*`` when an ``originals`` folder is given. The
    list itself is parsed whole (it holds paths, not images); images load lazily."""
    listing = Path(path)
    try:
        with listing.open(encoding="utf-8") as handle:
            rows = json.load(handle)
    except FileNotFoundError:
        raise ManifestError("IMDL-BenCo JSON not found", source=str(listing)) from None
    except json.JSONDecodeError as err:
        raise ManifestError(
            f"invalid JSON: {err.msg} at line {err.lineno}", source=str(listing)
        ) from None
    if not isinstance(rows, list):
        raise ManifestError("expected a JSON list of [edited, mask] rows", source=str(listing))
    original_index = _images_by_stem(Path(originals)) if originals is not None else {}
    base = listing.parent
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        where = f"{listing.name}[{index}]"
        if not (
            isinstance(row, list) and 2 <= len(row) <= 3 and all(isinstance(x, str) for x in row)
        ):
            yield PairRef.invalid(
                where,
                "row must be [edited, mask] or [edited, mask, original] strings",
                source=where,
            )
            continue
        edited = Path(row[0]) if os.path.isabs(row[0]) else base / row[0]
        stem = edited.stem
        # Stems repeat across folders of one list; keep ids unique and stable.
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        item = stem if count == 0 else f"{stem}-{count}"
        negative = row[1] == "Negative"
        mask = None if negative else (Path(row[1]) if os.path.isabs(row[1]) else base / row[1])
        if len(row) == 3:
            original: Path | None = Path(row[2]) if os.path.isabs(row[2]) else base / row[2]
        else:
            original = original_index.get(stem)
        yield PairRef(
            id=item,
            original=original,
            edited=edited,
            mask=mask,
            negative=negative,
            source=where,
            problem=None
            if original is not None
            else (
                "the IMDL-BenCo list gives no original image for this row (add it as a third "
                "element, or pass an originals folder)"
            ),
        )


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetFormat:
    """A readable dataset layout: ``read(path, **options)`` streams refs, ``sniff(path)``
    says whether ``path`` looks like this layout (``None``: never guessed)."""

    name: str
    read: Callable[..., Iterator[PairRef]]
    sniff: Callable[[Path], bool] | None
    description: str


DATASET_FORMATS: dict[str, DatasetFormat] = {}


def register_format(
    name: str,
    read: Callable[..., Iterator[PairRef]],
    sniff: Callable[[Path], bool] | None,
    description: str,
) -> None:
    DATASET_FORMATS[name] = DatasetFormat(name, read, sniff, description)


def _find_manifest(path: Path) -> Path | None:
    if path.is_file() and path.suffix.lower() in (".jsonl", ".csv"):
        return path
    if path.is_dir():
        for name in MANIFEST_NAMES:
            if (path / name).is_file():
                return path / name
    return None


def _read_manifest_path(path: Path, **options: Any) -> Iterator[PairRef]:
    manifest = _find_manifest(path)
    if manifest is None:
        raise ManifestError(f"no manifest ({' or '.join(MANIFEST_NAMES)}) found", source=str(path))
    return iter_manifest(manifest, **options)


def _looks_like_imdlbenco(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return False
    with path.open(encoding="utf-8") as handle:
        head = handle.read(256).lstrip()
    return head.startswith("[")


register_format(
    "manifest",
    _read_manifest_path,
    lambda p: _find_manifest(p) is not None,
    "JSONL/CSV manifest (id, original, edited, instruction, mask), or a folder holding manifest.jsonl/.csv",
)
register_format(
    "folder",
    iter_folder,
    lambda p: p.is_dir() and (p / "original").is_dir() and (p / "edited").is_dir(),
    "folder with original/, edited/, optional mask/ and instructions.jsonl, paired by file stem",
)
register_format(
    "imdlbenco",
    iter_imdlbenco,
    _looks_like_imdlbenco,
    'IMDL-BenCo JsonDataset list [[edited, mask | "Negative"(, original)], ...]',
)

_EXTRA_FORMAT_MODULES: tuple[str, ...] = ("sigma_iml.data.benchmarks", "sigma_iml.data.corpora")


def _load_extra_formats() -> None:
    import importlib

    for module in _EXTRA_FORMAT_MODULES:
        importlib.import_module(module)


def detect_format(path: str | os.PathLike) -> str:
    """The name of the first registered format whose sniffer accepts ``path``."""
    _load_extra_formats()
    target = Path(path)
    if not target.exists():
        raise ManifestError("dataset path does not exist", source=str(target))
    for fmt in DATASET_FORMATS.values():
        if fmt.sniff is not None and fmt.sniff(target):
            return fmt.name
    known = ", ".join(DATASET_FORMATS)
    raise ManifestError(f"cannot tell the dataset format; pass one of: {known}", source=str(target))


def open_dataset(
    path: str | os.PathLike, format: str | None = None, **options: Any
) -> Iterator[PairRef]:
    """Stream the pairs of the dataset at ``path`` (format sniffed unless given)."""
    _load_extra_formats()
    name = format or detect_format(path)
    if name not in DATASET_FORMATS:
        raise ConfigError(f"unknown dataset format {name!r}; known: {', '.join(DATASET_FORMATS)}")
    return DATASET_FORMATS[name].read(Path(path), **options)


def dataset_name(path: str | os.PathLike) -> str:
    """A short name for result tables: the dataset folder's name."""
    target = Path(path).resolve()
    if target.is_file():
        return target.parent.name if target.stem in ("manifest", "table") else target.stem
    return target.name


def take(refs: Iterable[PairRef], limit: int | None) -> Iterator[PairRef]:
    """The first ``limit`` refs (all when ``limit`` is None)."""
    for index, ref in enumerate(refs):
        if limit is not None and index >= limit:
            return
        yield ref
