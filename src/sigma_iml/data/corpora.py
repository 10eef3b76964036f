"""Readers for public image-editing corpora, and a WebDataset writer.

Two storage layouts are read here, both streamed so that memory stays flat however large
the corpus is, and both with the images kept as encoded bytes
(:class:`~sigma_iml.data.images.EncodedImage`) that are decoded from memory later:

- **Parquet in the Hugging Face dataset layout** (:func:`iter_parquet`): images are bytes
  inside the rows, either as the ``{"bytes", "path"}`` struct that ``datasets`` writes for
  an ``Image`` feature, or as a plain binary column. Which columns hold what is a
  :class:`ColumnMap`; :data:`PARQUET_PRESETS` names the maps of the corpora we annotate.
- **WebDataset tar shards** (:func:`iter_webdataset`): members grouped into samples by
  key, named after :class:`WebDatasetKeys`. :func:`write_webdataset_shards` writes the same
  convention, so the reader reads the writer's output.

Rows and samples that cannot be used become :meth:`PairRef.invalid` refs naming the file,
row (or sample) and column (or member), so a batch job records them like any other
failure. Problems with a whole file (a missing column, a truncated tar) raise a
:class:`~sigma_iml.errors.DataError` naming that file, after every complete item before it
has been yielded. The conventions are documented in ``docs/corpora.md``.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ..errors import ConfigError, DataError, ManifestError
from .images import EncodedImage, ImageSource, load_image, load_mask
from .io import encode_png, fsync_folder
from .pair import PairRef

__all__ = [
    "MAGICBRUSH_WITH_BRUSH_MASK",
    "PARQUET_PRESETS",
    "ColumnMap",
    "DEFAULT_WEBDATASET_KEYS",
    "WebDatasetKeys",
    "iter_parquet",
    "iter_webdataset",
    "list_parquet_files",
    "list_webdataset_shards",
    "looks_like_parquet",
    "looks_like_webdataset",
    "resolve_column_map",
    "write_webdataset_shards",
]

_GLOB_CHARACTERS = re.compile(r"[*?\[]")


def _is_pattern(text: str) -> bool:
    return bool(_GLOB_CHARACTERS.search(text))


def _is_hidden(path: Path, root: Path) -> bool:
    """Hidden files and folders (``.cache/`` of ``huggingface-cli download``, our own
    ``.shard-000001.tar.tmp-*`` files) never belong to a corpus."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _files_matching(pattern: str) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())


# --------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMap:
    """Which Parquet columns hold a pair.

    ``original``/``edited`` (required) and ``mask`` hold images; ``instruction`` holds the
    text, or a list of alternative texts (the first non-empty one is used, all are kept in
    ``meta["instruction_variants"]``). ``id_columns`` are joined with ``-`` into the id
    (MagicBrush: ``img_id`` + ``turn_index`` -> ``"327726-1"``); when they are empty, or
    absent from a file, or null in a row, the id is ``<file stem>-<row index>``.
    ``meta_columns`` are copied into ``PairRef.meta`` when present (edit type, scores).

    ``mask``, ``id_columns`` and ``meta_columns`` are optional per file: a file without
    them still reads. ``original``, ``edited`` and ``instruction`` (unless ``None``) must
    exist in every file.
    """

    original: str
    edited: str
    instruction: str | None = "instruction"
    mask: str | None = None
    id_columns: tuple[str, ...] = ()
    meta_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("id_columns", "meta_columns"):
            value = getattr(self, name)
            # A lone string would otherwise become a tuple of its characters.
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if not self.original or not self.edited:
            raise ConfigError("a ColumnMap needs the original and edited image columns")

    @property
    def required(self) -> dict[str, str]:
        """Role -> column of the columns every file must have."""
        roles = {"original": self.original, "edited": self.edited}
        if self.instruction is not None:
            roles["instruction"] = self.instruction
        return roles

    @property
    def all_columns(self) -> list[str]:
        """Every column this map may read, each once, in a stable order."""
        names = [self.original, self.edited, self.instruction, self.mask]
        names += [*self.id_columns, *self.meta_columns]
        return list(dict.fromkeys(n for n in names if n))


#: Column maps of the public corpora, by lower-case name. Where each comes from, and what
#: could not be verified, is in docs/corpora.md.
PARQUET_PRESETS: dict[str, ColumnMap] = {
    # osunlp/MagicBrush dataset card. mask_img (the annotator's brush region) is not
    # attached: its pixels need MagicBrush's own rule (benchmarks.magicbrush_edit_mask),
    # which the generic mask decoding would get wrong. For ground truth use the
    # "magicbrush" benchmark reader; MAGICBRUSH_WITH_BRUSH_MASK attaches the raw image.
    "magicbrush": ColumnMap(
        original="source_img",
        edited="target_img",
        instruction="instruction",
        id_columns=("img_id", "turn_index"),
    ),
    # Bin1117/AnyEdit dataset card. visual_input (an extra reference image of the
    # "visual" edit types) is not a pair image and is not read. image_id names the source
    # image, not the edit, so it goes to meta and the id is file stem + row.
    "anyedit": ColumnMap(
        original="image_file",
        edited="edited_file",
        instruction="edit_instruction",
        meta_columns=("image_id", "edit_type"),
    ),
    # TIGER-Lab/OmniEdit-Filtered-1.2M dataset card: edited_prompt_list is a list of
    # paraphrases of one edit; the first is used (see ColumnMap).
    "omniedit": ColumnMap(
        original="src_img",
        edited="edited_img",
        instruction="edited_prompt_list",
        id_columns=("omni_edit_id",),
        meta_columns=("task", "sc_score_1", "sc_score_2", "pq_score", "o_score"),
    ),
    # CrispEdit-2M as read by public labelling code (no dataset card was found); no id
    # column, files are named after the edit type (add_00000.parquet).
    "crispedit": ColumnMap(
        original="input_img",
        edited="output_img",
        instruction="instruction",
        meta_columns=("type",),
    ),
    # yeates/PromptfixData dataset card; no id column.
    "promptfix": ColumnMap(
        original="input_img",
        edited="processed_img",
        instruction="instruction",
        meta_columns=("task_id", "auxiliary_prompt"),
    ),
}


#: MagicBrush with ``mask_img`` attached as it is stored (not a binary mask; see the
#: ``magicbrush`` preset).
MAGICBRUSH_WITH_BRUSH_MASK = ColumnMap(
    original="source_img",
    edited="target_img",
    instruction="instruction",
    mask="mask_img",
    id_columns=("img_id", "turn_index"),
)


def resolve_column_map(columns: ColumnMap | str) -> ColumnMap:
    """A :class:`ColumnMap`, or the preset of that name (case-insensitive)."""
    if isinstance(columns, ColumnMap):
        return columns
    preset = PARQUET_PRESETS.get(str(columns).lower())
    if preset is None:
        raise ConfigError(
            f"unknown Parquet column preset {columns!r}; presets: {', '.join(sorted(PARQUET_PRESETS))} "
            "(or pass a ColumnMap)"
        )
    return preset


def list_parquet_files(path: str | os.PathLike) -> list[Path]:
    """The Parquet files behind ``path``: one file, every ``*.parquet`` under a folder
    (recursively, sorted, hidden folders skipped), or a glob pattern's matches (sorted).

    A Hugging Face snapshot keeps every split under ``data/``; pass a glob such as
    ``data/train-*.parquet`` to read one split.
    """
    return _list_inputs(
        os.fspath(path), lambda f: f.suffix == ".parquet", "folder holds no .parquet file"
    )


def _list_inputs(text: str, accept: Callable[[Path], bool], none_in_folder: str) -> list[Path]:
    """The files behind a glob (sorted), one file, or a folder (recursively, sorted,
    hidden entries skipped, only files ``accept`` takes); ``none_in_folder`` is the
    error when a folder holds none."""
    if _is_pattern(text):
        files = _files_matching(text)
        if not files:
            raise DataError("no file matches this pattern", source=text)
        return files
    root = Path(text)
    if root.is_file():
        return [root]
    if root.is_dir():
        files = sorted(
            f for f in root.rglob("*") if f.is_file() and accept(f) and not _is_hidden(f, root)
        )
        if not files:
            raise DataError(none_in_folder, source=text)
        return files
    raise DataError("no such file or folder", source=text)


def _has_parquet_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


def looks_like_parquet(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Parquet file, a folder holding one, or a glob matching one."""
    text = os.fspath(path)
    if _is_pattern(text):
        return any(_has_parquet_magic(f) for f in _files_matching(text))
    root = Path(text)
    if root.is_file():
        return _has_parquet_magic(root)
    if root.is_dir():
        return any(
            f.is_file() and not _is_hidden(f, root) and _has_parquet_magic(f)
            for f in root.rglob("*.parquet")
        )
    return False


def iter_parquet(
    path: str | os.PathLike,
    *,
    columns: ColumnMap | str = "magicbrush",
    batch_size: int = 16,
) -> Iterator[PairRef]:
    """Stream :class:`PairRef` items out of Parquet files (see :func:`list_parquet_files`).

    Only the mapped columns are read, ``batch_size`` rows at a time, so memory is bounded
    by one row group of those columns, not by the file. Each image becomes
    ``EncodedImage(bytes, name=f"{file.name} row {row} column {column}")``.

    A row with a null, empty or wrongly typed image becomes a :meth:`PairRef.invalid`
    naming file, row and column. A file lacking a required column, or that cannot be read,
    raises :class:`~sigma_iml.errors.ManifestError` / :class:`~sigma_iml.errors.DataError`
    naming the file, after every row of the files before it has been yielded.
    """
    # Not a generator itself: a bad preset or path fails at the call, not at first next().
    column_map = resolve_column_map(columns)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    files = list_parquet_files(path)
    return (ref for file in files for ref in _iter_parquet_file(file, column_map, batch_size))


def _iter_parquet_file(file: Path, column_map: ColumnMap, batch_size: int) -> Iterator[PairRef]:
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"not a readable Parquet file: {err}", source=str(file)) from err
    try:
        available = set(parquet.schema_arrow.names)
        missing = [
            f"{col!r} ({role})" for role, col in column_map.required.items() if col not in available
        ]
        if missing:
            raise ManifestError(
                f"{file.name} has no column {', '.join(missing)}; its columns are "
                f"{', '.join(sorted(available))}. Choose another preset or pass a ColumnMap",
                source=str(file),
            )
        wanted = [c for c in column_map.all_columns if c in available]
        batches = parquet.iter_batches(batch_size=batch_size, columns=wanted)
        first_row = 0
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as err:
                raise DataError(
                    f"cannot read the rows from row {first_row} on: {err}", source=str(file)
                ) from err
            cells = {name: batch.column(name).to_pylist() for name in wanted}
            for offset in range(batch.num_rows):
                row = {name: values[offset] for name, values in cells.items()}
                yield _ref_from_row(file, first_row + offset, row, column_map)
            first_row += batch.num_rows
    finally:
        parquet.close()


def _image_from_cell(
    value: Any, name: str, *, required: bool
) -> tuple[EncodedImage | None, str | None]:
    """The encoded image in one cell, or the problem with it. A missing optional image
    (a row without a mask) is no problem."""
    if isinstance(value, dict):
        if "bytes" not in value:
            return None, f"is a struct without a 'bytes' field (fields: {', '.join(value)})"
        data = value["bytes"]
        if data is None:
            if not required:
                return None, None
            path = value.get("path")
            hint = (
                f" (only a file reference {path!r}; images must be embedded in the rows)"
                if path
                else ""
            )
            return None, f"has no image bytes{hint}"
    else:
        data = value
    if data is None:
        return None, ("is null (no image)" if required else None)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return (
            None,
            f"holds {type(data).__name__}, expected image bytes or a {{bytes, path}} struct",
        )
    if len(data) == 0:
        return None, "holds zero bytes"
    return EncodedImage(bytes(data), name=name), None


def _instruction_from_value(value: Any) -> tuple[str | None, list[str] | None, str | None]:
    """``(instruction, variants, problem)`` from a text or list-of-texts value."""
    if value is None:
        return None, None, None
    if isinstance(value, str):
        return (value.strip() or None), None, None
    if isinstance(value, (list, tuple)):
        if not all(v is None or isinstance(v, str) for v in value):
            return None, None, "is a list holding non-text values"
        variants = [v.strip() for v in value if v and v.strip()]
        return (variants[0] if variants else None), variants, None
    return None, None, f"holds {type(value).__name__}, expected text or a list of texts"


def _ref_from_row(file: Path, row: int, cells: dict[str, Any], column_map: ColumnMap) -> PairRef:
    # Id columns absent from this file, or null in this row, fall back to the position.
    id_values = [cells.get(c) for c in column_map.id_columns]
    if id_values and all(v is not None and str(v) != "" for v in id_values):
        item_id = "-".join(str(v) for v in id_values)
    else:
        item_id = f"{file.stem}-{row}"
    source = f"{file} row {row}"
    problems: list[str] = []

    def image(column: str | None, required: bool) -> EncodedImage | None:
        if column is None or column not in cells:
            return None
        encoded, problem = _image_from_cell(
            cells[column], f"{file.name} row {row} column {column}", required=required
        )
        if problem:
            problems.append(f"column {column!r} {problem}")
        return encoded

    original = image(column_map.original, True)
    edited = image(column_map.edited, True)
    mask = image(column_map.mask, False)

    meta: dict[str, Any] = {"parquet_file": str(file), "parquet_row": row}
    instruction = None
    if column_map.instruction is not None:
        instruction, variants, problem = _instruction_from_value(cells[column_map.instruction])
        if problem:
            problems.append(f"column {column_map.instruction!r} {problem}")
        if variants is not None:
            meta["instruction_variants"] = variants
    for column in column_map.meta_columns:
        if column in cells:
            meta[column] = cells[column]

    if problems:
        return PairRef.invalid(item_id, f"{file.name} row {row}: " + "; ".join(problems), source)
    return PairRef(
        id=item_id,
        original=original,
        edited=edited,
        instruction=instruction,
        mask=mask,
        source=source,
        meta=meta,
    )


# --------------------------------------------------------------------------------------
# WebDataset
# --------------------------------------------------------------------------------------

_SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def _as_names(value: Iterable[str] | str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    return tuple(n.lower().lstrip(".") for n in names)


@dataclass(frozen=True)
class WebDatasetKeys:
    """How the members of a WebDataset sample are named.

    A member ``<key>.<extension>`` belongs to sample ``<key>`` (the key ends at the first
    dot of the file name, as in the ``webdataset`` package). An image role (``original``,
    ``edited``, ``mask``) matches an extension ``<name>.<image extension>`` for any of its
    names, e.g. ``src.jpg`` or ``original.png``; ``instruction`` and ``metadata`` match
    their extensions exactly (``txt``, ``json``). Matching is case-insensitive. The first
    name of each role is what :func:`write_webdataset_shards` writes.
    """

    original: tuple[str, ...] = ("original", "src", "source")
    edited: tuple[str, ...] = ("edited", "tgt", "target")
    mask: tuple[str, ...] = ("mask",)
    instruction: tuple[str, ...] = ("txt", "instruction.txt", "prompt.txt")
    metadata: tuple[str, ...] = ("json",)
    image_extensions: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
    _roles: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roles: dict[str, str] = {}
        for role in ("original", "edited", "mask", "instruction", "metadata", "image_extensions"):
            names = _as_names(getattr(self, role))
            object.__setattr__(self, role, names)
            if not names and role not in ("mask", "original"):
                raise ConfigError(f"WebDatasetKeys.{role} needs at least one name")
            if role == "image_extensions":
                continue
            for name in names:
                if name in roles:
                    raise ConfigError(
                        f"WebDataset member name {name!r} is given for both {roles[name]} and {role}"
                    )
                roles[name] = role
        object.__setattr__(self, "_roles", roles)

    def role_of(self, extension: str) -> str | None:
        """The role of a member extension (``"src.jpg"`` -> ``"original"``), or ``None``."""
        extension = extension.lower()
        role = self._roles.get(extension)
        if role is not None:
            return role
        base, _, image_extension = extension.rpartition(".")
        role = self._roles.get(base)
        if role in ("original", "edited", "mask") and image_extension in self.image_extensions:
            return role
        return None


DEFAULT_WEBDATASET_KEYS = WebDatasetKeys()

#: ``PairRef.meta`` keys the reader adds; the writer drops them, since they would be stale
#: in the new shards.
_READER_PROVENANCE_KEYS = ("webdataset_shard", "webdataset_key", "webdataset_unused_members")
#: JSON keys with a meaning of their own, not copied into ``meta``.
_RESERVED_JSON_KEYS = ("id", "instruction", "negative")

_BRACES = re.compile(r"\{([^{}]*)\}")


def _expand_braces(pattern: str) -> list[str]:
    """Expand ``{000..009}`` ranges and ``{a,b}`` lists as ``webdataset`` URLs do."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        low, high = numeric.groups()
        padded = (low.startswith("0") and len(low) > 1) or (high.startswith("0") and len(high) > 1)
        width = max(len(low), len(high)) if padded else 0
        start, stop = int(low), int(high)
        step = 1 if stop >= start else -1
        alternatives = [str(i).zfill(width) for i in range(start, stop + step, step)]
    elif "," in body:
        alternatives = body.split(",")
    else:
        raise ConfigError(
            f"cannot expand {{{body}}} in {pattern!r}: expected {{first..last}} or {{a,b,...}}"
        )
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for alt in alternatives for expanded in _expand_braces(head + alt + tail)]


def _is_shard_name(path: Path) -> bool:
    return path.name.lower().endswith(_SHARD_SUFFIXES)


def list_webdataset_shards(path: str | os.PathLike) -> list[Path]:
    """The tar shards behind ``path``: one tar (``.tar``, ``.tar.gz``, ``.tgz``), every
    shard under a folder (recursively, sorted), a brace pattern
    (``shards/train-{000000..000099}.tar``, in pattern order) or a glob (sorted)."""
    text = os.fspath(path)
    if "{" in text:
        shards: list[Path] = []
        for expanded in _expand_braces(text):
            if _is_pattern(expanded):
                shards += _files_matching(expanded)
            elif Path(expanded).is_file():
                shards.append(Path(expanded))
            else:
                raise DataError("shard not found", source=expanded)
        return shards
    return _list_inputs(text, _is_shard_name, "folder holds no .tar shard")


def _has_tar_magic(path: Path) -> bool:
    """A POSIX/GNU tar header says ``ustar`` at byte 257; compressed shards are trusted by
    their gzip/bzip2/xz signature."""
    try:
        with path.open("rb") as handle:
            head = handle.read(262)
    except OSError:
        return False
    return (
        head[257:262] == b"ustar"
        or head[:2] == b"\x1f\x8b"
        or head[:3] == b"BZh"
        or head[:6] == b"\xfd7zXZ\x00"
    )


def looks_like_webdataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a tar shard, a folder holding one, or a brace/glob pattern
    matching one."""
    text = os.fspath(path)
    if "{" in text or _is_pattern(text):
        try:
            return any(
                _is_shard_name(s) and _has_tar_magic(s) for s in list_webdataset_shards(text)
            )
        except (DataError, ConfigError):
            return False
    root = Path(text)
    if root.is_file():
        return _is_shard_name(root) and _has_tar_magic(root)
    if root.is_dir():
        return any(
            f.is_file() and _is_shard_name(f) and not _is_hidden(f, root) and _has_tar_magic(f)
            for f in root.rglob("*")
        )
    return False


def _split_member_name(name: str) -> tuple[str | None, str | None]:
    """``dir/key.ext.more`` -> ``("dir/key", "ext.more")``: the webdataset convention. Names
    without an extension, and hidden ones (macOS ``._*`` files), belong to no sample."""
    folder, _, base = name.rpartition("/")
    if "." not in base or base.startswith("."):
        return None, None
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension


class _HeaderErrorRecorder(tarfile.TarInfo):
    """A TarInfo that remembers why reading a header failed.

    In stream mode ``tarfile`` ends iteration silently when the data stops at a member
    boundary or a header is cut or garbled; only the end-of-archive zero block is a clean
    end. Subclasses are made per shard (:func:`_recording_tarinfo`) so each has its own log.
    """

    header_errors: list[Exception]

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.HeaderError as err:
            cls.header_errors.append(err)
            raise


def _recording_tarinfo() -> type[_HeaderErrorRecorder]:
    return type("_ShardTarInfo", (_HeaderErrorRecorder,), {"header_errors": []})


_TAR_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def iter_webdataset(
    path: str | os.PathLike, *, keys: WebDatasetKeys = DEFAULT_WEBDATASET_KEYS
) -> Iterator[PairRef]:
    """Stream :class:`PairRef` items out of WebDataset tar shards (see
    :func:`list_webdataset_shards`), one member in memory at a time.

    The id is the ``id`` of the sample's JSON member when it has one, else its key. The
    instruction is the text member, else the JSON's ``instruction``. A sample without an
    edited image, with two members of one role, or with unreadable text/JSON becomes a
    :meth:`PairRef.invalid` naming shard, key and member. A truncated or corrupt shard
    raises :class:`~sigma_iml.errors.DataError` naming it, after every complete sample
    before the damage has been yielded; call this per shard
    (:func:`list_webdataset_shards`) to carry on with the next one.
    """
    shards = list_webdataset_shards(path)  # path errors surface at the call
    return (ref for shard in shards for ref in _iter_shard(shard, keys))


def _iter_shard(shard: Path, keys: WebDatasetKeys) -> Iterator[PairRef]:
    try:
        handle = shard.open("rb")
    except OSError as err:
        raise DataError(f"cannot open shard: {err}", source=str(shard)) from err
    tarinfo = _recording_tarinfo()
    current_key: str | None = None
    current_members: list[tuple[str, str, bytes]] = []
    complete = 0
    member_name: str | None = None
    with handle:
        try:
            archive = tarfile.open(fileobj=handle, mode="r|*", tarinfo=tarinfo)
            for info in archive:
                # Stream mode keeps every TarInfo it has read; drop them so a shard of
                # any size reads in flat memory.
                archive.members = []
                if not info.isfile():
                    continue
                member_name = info.name
                key, extension = _split_member_name(info.name)
                if key is None or extension is None:
                    continue
                extracted = archive.extractfile(info)
                data = extracted.read() if extracted is not None else b""
                if key != current_key:
                    if current_key is not None:
                        yield _ref_from_sample(shard, current_key, current_members, keys)
                        complete += 1
                    current_key, current_members = key, []
                current_members.append((extension, info.name, data))
        except _TAR_READ_ERRORS as err:
            raise DataError(
                f"shard is truncated or corrupt: {err} (after {complete} complete samples; last "
                f"member reached: {member_name!r}; the sample {current_key!r} being read was not "
                "yielded)",
                source=str(shard),
            ) from err
    errors = tarinfo.header_errors
    if not errors or not isinstance(errors[-1], tarfile.EOFHeaderError):
        reason = (
            f"{type(errors[-1]).__name__}: {errors[-1]}" if errors else "no end-of-archive block"
        )
        raise DataError(
            f"shard is truncated or corrupt: it ends without the end-of-archive block ({reason}) "
            f"after {complete} complete samples; the last sample {current_key!r} may be incomplete "
            "and was not yielded",
            source=str(shard),
        )
    if current_key is not None:
        yield _ref_from_sample(shard, current_key, current_members, keys)


def _ref_from_sample(
    shard: Path, key: str, members: list[tuple[str, str, bytes]], keys: WebDatasetKeys
) -> PairRef:
    by_role: dict[str, list[tuple[str, bytes]]] = {}
    unused: list[str] = []
    for extension, name, data in members:
        role = keys.role_of(extension)
        if role is None:
            unused.append(extension)
        else:
            by_role.setdefault(role, []).append((name, data))
    problems: list[str] = []
    for role, entries in by_role.items():
        if len(entries) > 1:
            names = ", ".join(name for name, _ in entries)
            problems.append(f"{len(entries)} {role} members ({names}); expected one")

    def single(role: str) -> tuple[str, bytes] | None:
        entries = by_role.get(role)
        return entries[0] if entries else None

    metadata: dict[str, Any] = {}
    if (entry := single("metadata")) is not None:
        name, data = entry
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            problems.append(f"member {name!r} is not UTF-8 JSON: {err}")
        else:
            if isinstance(parsed, dict):
                metadata = parsed
            else:
                problems.append(
                    f"member {name!r} holds a JSON {type(parsed).__name__}, expected an object"
                )

    stored_id = metadata.get("id")
    item_id = stored_id if isinstance(stored_id, str) and stored_id else key
    meta: dict[str, Any] = {k: v for k, v in metadata.items() if k not in _RESERVED_JSON_KEYS}

    instruction = None
    if (entry := single("instruction")) is not None:
        name, data = entry
        try:
            instruction = data.decode("utf-8").strip() or None
        except UnicodeDecodeError as err:
            problems.append(f"member {name!r} is not UTF-8 text: {err}")
    elif "instruction" in metadata:
        instruction, variants, problem = _instruction_from_value(metadata["instruction"])
        if problem:
            problems.append(f"JSON field 'instruction' {problem}")
        if variants is not None:
            meta.setdefault("instruction_variants", variants)

    def image(role: str) -> EncodedImage | None:
        entry = single(role)
        if entry is None:
            return None
        name, data = entry
        if not data:
            problems.append(f"member {name!r} is empty")
            return None
        return EncodedImage(data, name=f"{shard.name} member {name}")

    original, edited, mask = image("original"), image("edited"), image("mask")
    if edited is None and single("edited") is None:
        expected = ", ".join(f"{key}.{n}.png" for n in keys.edited)
        problems.append(f"no edited image (expected a member such as {expected})")

    meta["webdataset_shard"] = str(shard)
    meta["webdataset_key"] = key
    if unused:
        meta["webdataset_unused_members"] = unused
    source = f"{shard} sample {key!r}"
    if problems:
        return PairRef.invalid(
            item_id, f"{shard.name} sample {key!r}: " + "; ".join(problems), source
        )
    return PairRef(
        id=item_id,
        original=original,
        edited=edited,
        instruction=instruction,
        mask=mask,
        negative=mask is None and metadata.get("negative") is True,
        source=source,
        meta=meta,
    )


# --------------------------------------------------------------------------------------
# WebDataset writer
# --------------------------------------------------------------------------------------

_IMAGE_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpg"),
    (b"WEBP", 8, "webp"),
    (b"GIF8", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
)


def _sniff_image_format(data: bytes) -> str | None:
    for signature, offset, extension in _IMAGE_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return extension
    return None


#: zlib level of the PNGs written for decoded images (zlib's default: shards are kept).
PNG_COMPRESS_LEVEL = 6


def _encode_image(
    source: ImageSource, *, is_mask: bool, item_id: str, role: str
) -> tuple[str, bytes]:
    """``(format extension, bytes)`` of one image. Encoded data (bytes, files) is written
    as it is; decoded images are written as PNG, masks binarised by the package's rule
    (:func:`~sigma_iml.data.images.load_mask`) to 0/255."""
    if isinstance(source, EncodedImage):
        data = source.data
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise DataError(
                f"cannot read the {role} image: {err}", item=item_id, source=str(source)
            ) from err
    elif isinstance(source, (Image.Image, np.ndarray)):
        if is_mask:
            image = load_mask(source)
        elif isinstance(source, Image.Image):
            image = source
        else:
            image = load_image(source)
        return "png", encode_png(image, compress_level=PNG_COMPRESS_LEVEL)
    else:
        raise DataError(
            f"{role} image of type {type(source).__name__} cannot be written", item=item_id
        )
    image_format = _sniff_image_format(data)
    if image_format is None:
        raise DataError(
            f"{role} image is not PNG, JPEG, WebP, GIF, BMP or TIFF (judged by its first bytes)",
            item=item_id,
        )
    return image_format, data


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"a metadata value of type {type(value).__name__} cannot be stored as JSON")


def _writer_role_name(keys: WebDatasetKeys, role: str) -> str:
    names = getattr(keys, role)
    if not names:
        raise ConfigError(f"WebDatasetKeys.{role} is empty: the writer has no name to write")
    name = names[0]
    if role in ("original", "edited", "mask") and keys.role_of(f"{name}.png") != role:
        raise ConfigError(
            f"the first {role} name {name!r} must be a bare role name such as {role!r}"
        )
    return name


def _sample_members(sample: PairRef, keys: WebDatasetKeys) -> list[tuple[str, bytes]]:
    """Every member of one sample, ``(extension, data)``, encoded before anything is
    written so that a bad sample leaves no half-written sample behind."""
    if sample.problem is not None:
        raise DataError(
            f"cannot write an invalid item: {sample.problem}", item=sample.id, source=sample.source
        )
    if sample.edited is None:
        raise DataError(
            "cannot write an item without an edited image", item=sample.id, source=sample.source
        )
    members: list[tuple[str, bytes]] = []
    for role, source in (
        ("edited", sample.edited),
        ("mask", sample.mask),
        ("original", sample.original),
    ):
        if source is None:
            continue
        image_format, data = _encode_image(
            source, is_mask=role == "mask", item_id=sample.id, role=role
        )
        members.append((f"{_writer_role_name(keys, role)}.{image_format}", data))
    if sample.instruction is not None:
        members.append((_writer_role_name(keys, "instruction"), sample.instruction.encode("utf-8")))
    payload = {
        k: v
        for k, v in sample.meta.items()
        if k not in _READER_PROVENANCE_KEYS and k not in _RESERVED_JSON_KEYS
    }
    payload["id"] = sample.id
    if sample.negative and sample.mask is None:
        payload["negative"] = True
    try:
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as err:
        raise DataError(f"metadata cannot be written: {err}", item=sample.id) from err
    members.append((_writer_role_name(keys, "metadata"), text.encode("utf-8")))
    return members


_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")


def _sample_key(item_id: str, used: set[str]) -> str:
    """A member key for ``item_id``: no dots (the key ends at the first dot) and no
    slashes; made unique within the shard. The exact id is kept in the JSON member."""
    base = _UNSAFE_KEY_CHARACTERS.sub("_", item_id).strip("_")[:96] or "sample"
    key, counter = base, 1
    while key in used:
        key, counter = f"{base}_{counter}", counter + 1
    used.add(key)
    return key


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    # Fixed owner, mode and time: the same samples always give byte-identical shards.
    info.mtime = 0
    info.mode = 0o444
    archive.addfile(info, io.BytesIO(data))


class _ShardWriter:
    """One shard being written to a hidden temporary file, renamed into place only when
    complete and flushed to disk, so a reader never sees a partial shard."""

    def __init__(self, final: Path):
        self.final = final
        self.temporary = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        self.handle = self.temporary.open("wb")
        self.archive = tarfile.open(fileobj=self.handle, mode="w", format=tarfile.PAX_FORMAT)
        self.used_keys: set[str] = set()
        self.count = 0

    def add(self, sample: PairRef, keys: WebDatasetKeys) -> None:
        members = _sample_members(sample, keys)
        key = _sample_key(sample.id, self.used_keys)
        for extension, data in members:
            _add_member(self.archive, f"{key}.{extension}", data)
        self.count += 1

    def commit(self) -> Path:
        self.archive.close()
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.temporary, self.final)
        fsync_folder(self.final.parent)
        return self.final

    def abort(self) -> None:
        try:
            self.archive.close()
        except (OSError, tarfile.TarError):
            pass
        self.handle.close()
        self.temporary.unlink(missing_ok=True)


def write_webdataset_shards(
    samples: Iterable[PairRef],
    out_dir: str | os.PathLike,
    *,
    max_per_shard: int = 1000,
    keys: WebDatasetKeys = DEFAULT_WEBDATASET_KEYS,
    prefix: str = "shard",
    overwrite: bool = False,
) -> list[Path]:
    """Write ``samples`` as WebDataset shards ``<prefix>-000000.tar``, ... in ``out_dir``,
    in the convention :func:`iter_webdataset` reads, and return their paths.

    Each sample becomes ``<key>.edited.<fmt>``, ``<key>.mask.<fmt>`` and
    ``<key>.original.<fmt>`` (those it has), ``<key>.txt`` (the instruction) and
    ``<key>.json`` (``id``, ``negative`` and ``meta``). Encoded images are written as they
    are; arrays and PIL images as PNG. The key is the id made safe for file names; the
    exact id is in the JSON.

    Samples are streamed: one shard is open at a time, written to a hidden temporary file
    and renamed into place when complete. A sample that cannot be written (an invalid ref,
    no edited image, an unknown image format) raises :class:`~sigma_iml.errors.DataError`;
    the shards completed before it stay, the one in progress is removed. Existing
    ``<prefix>-*.tar`` shards in ``out_dir`` are an error unless ``overwrite``, which
    replaces them and removes those the new run did not write (after a failure too, so
    the folder never mixes old and new shards).
    """
    if max_per_shard < 1:
        raise ConfigError(f"max_per_shard must be at least 1, got {max_per_shard}")
    if not prefix or _UNSAFE_KEY_CHARACTERS.search(prefix):
        raise ConfigError(f"shard prefix {prefix!r} must be letters, digits, '_' or '-'")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob(f"{prefix}-*.tar"))
    if existing and not overwrite:
        raise DataError(
            f"{len(existing)} shards named {prefix}-*.tar already exist; pass overwrite=True to replace them",
            source=str(folder),
        )
    written: list[Path] = []
    current: _ShardWriter | None = None
    try:
        for sample in samples:
            if current is None:
                current = _ShardWriter(folder / f"{prefix}-{len(written):06d}.tar")
            current.add(sample, keys)
            if current.count >= max_per_shard:
                written.append(current.commit())
                current = None
        if current is not None:
            written.append(current.commit())
            current = None
    finally:
        if current is not None:
            current.abort()
        # Also after a failure: a folder mixing new shards with old ones would read as one
        # corpus. (``existing`` is only non-empty with ``overwrite``.)
        for stale in existing:
            if stale not in written:
                stale.unlink(missing_ok=True)
    return written


# --------------------------------------------------------------------------------------
# Registration with the dataset readers (``open_dataset(path, format="parquet", columns=...)``)
# --------------------------------------------------------------------------------------


def _register_formats() -> None:
    # Format detection tries sniffers in registration order. The benchmark readers
    # (MagicBrush is Parquet too) must come before the generic "parquet" sniffer.
    from . import benchmarks  # noqa: F401
    from .readers import register_format

    register_format(
        "parquet",
        iter_parquet,
        looks_like_parquet,
        "Parquet in the Hugging Face layout, images as bytes in the rows (columns= a preset: "
        + ", ".join(PARQUET_PRESETS)
        + ", or a ColumnMap)",
    )
    register_format(
        "webdataset",
        iter_webdataset,
        looks_like_webdataset,
        "WebDataset tar shards: <key>.original/.edited/.mask.<image ext>, <key>.txt, <key>.json",
    )


_register_formats()
