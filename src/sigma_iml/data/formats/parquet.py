"""The ``parquet`` format: image-editing corpora stored as Parquet in the Hugging Face
dataset layout, streamed so that memory stays flat however large the corpus is.

Images are bytes inside the rows, either as the ``{"bytes", "path"}`` struct that
``datasets`` writes for an ``Image`` feature, or as a plain binary column; they are kept
encoded (:class:`~sigma_iml.data.images.EncodedImage`) and decoded from memory later. A
struct that holds only a ``path`` (what ``datasets`` writes for images that stay local
files) names a file relative to the parquet file's folder, under the manifests' rules
(:func:`~sigma_iml.data.formats.base.inside_dataset`). Which columns hold what is a
:class:`ColumnMap`; :data:`PARQUET_PRESETS` names the maps of the corpora we annotate,
and without one the preset is detected from the first file's schema
(:func:`detect_column_map`). The conventions are documented in ``docs/corpora.md``.

Rows that cannot be used become :meth:`PairRef.invalid` refs naming the file, row and
column, so a batch job records them like any other failure. Problems with a whole file
(a missing column, an unreadable file) raise a :class:`~sigma_iml.errors.DataError`
naming that file, after every complete item before it has been yielded.

The benchmark layouts stored this way (``magicbrush``, ``opensdi``) use the helpers at
the end of this module: Hugging Face split selection, column checks and image cells.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DataError, ManifestError
from ..images import EncodedImage
from ..io import (
    PARQUET_BATCH_ROWS,
    files_of_pattern,
    is_hidden,
    is_path_pattern,
    iter_parquet_rows,
    list_parquet_files,
    missing_columns,
    parquet_columns,
    parquet_row_count,
)
from ..pair import PairRef
from .base import (
    inside_dataset,
    instruction_from_value,
    parse_role_spec,
    ref_unless_problems,
    register_format,
)


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
    # attached: its pixels need MagicBrush's own rule (magicbrush.magicbrush_edit_mask),
    # which the generic mask decoding would get wrong. For ground truth use the
    # "magicbrush" benchmark reader; MAGICBRUSH_WITH_BRUSH_MASK attaches the raw image.
    "magicbrush": ColumnMap(
        original="source_img",
        edited="target_img",
        instruction="instruction",
        id_columns=("img_id", "turn_index"),
    ),
    # Bin1117/AnyEdit dataset card (features image_file, edited_file, edit_instruction,
    # edit_type, visual_input, image_id). visual_input (an extra reference image of the
    # "visual" edit types) is not a pair image and is not read. image_id names the source
    # image, not the edit, so it goes to meta and the id is file stem + row.
    "anyedit": ColumnMap(
        original="image_file",
        edited="edited_file",
        instruction="edit_instruction",
        meta_columns=("image_id", "edit_type"),
    ),
    # TIGER-Lab/OmniEdit-Filtered-1.2M dataset card (features omni_edit_id, task, src_img,
    # edited_img, edited_prompt_list, sc_score_1/2, pq_score, o_score): edited_prompt_list
    # is a list of paraphrases of one edit; the first is used (see ColumnMap).
    "omniedit": ColumnMap(
        original="src_img",
        edited="edited_img",
        instruction="edited_prompt_list",
        id_columns=("omni_edit_id",),
        meta_columns=("task", "sc_score_1", "sc_score_2", "pq_score", "o_score"),
    ),
    # WeiChow/CrispEdit-2M (EditMGT, arXiv:2512.11715), as public code that quotes its
    # dataset card and checks the footers of all 8,971 shards finds it: four columns,
    # input_img and output_img (image structs), instruction, and type (add, background
    # change, color, motion change, remove, replace, style). No id column; files are named
    # after the type (add_00000.parquet, "background change_00000.parquet").
    "crispedit": ColumnMap(
        original="input_img",
        edited="output_img",
        instruction="instruction",
        meta_columns=("type",),
    ),
    # yeates/PromptfixData dataset card, dataset_info.features: input_img, processed_img,
    # instruction, auxiliary_prompt, task_id; no id column.
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


#: The roles a ``role=column`` column spec may name (see :func:`parse_column_spec`).
COLUMN_ROLES = ("original", "edited", "instruction", "mask", "id", "meta")


def parse_column_spec(text: str) -> ColumnMap:
    """A :class:`ColumnMap` from ``role=column`` pairs separated by commas, e.g.
    ``original=before,edited=after,instruction=prompt``; ``id`` and ``meta`` take
    several columns joined by ``+`` (``id=img_id+turn_index``). ``instruction=`` with
    no column reads no instruction."""
    roles = parse_role_spec(text, COLUMN_ROLES, "column spec", "COLUMN")
    if not roles.get("original") or not roles.get("edited"):
        raise ConfigError(
            f"column spec {text!r} needs original=COLUMN and edited=COLUMN (or name a preset: "
            f"{', '.join(sorted(PARQUET_PRESETS))})"
        )
    return ColumnMap(
        original=roles["original"],
        edited=roles["edited"],
        instruction=roles.get("instruction", "instruction") or None,
        mask=roles.get("mask") or None,
        id_columns=tuple(c for c in roles.get("id", "").split("+") if c),
        meta_columns=tuple(c for c in roles.get("meta", "").split("+") if c),
    )


def resolve_column_map(columns: ColumnMap | str) -> ColumnMap:
    """A :class:`ColumnMap`, the preset of that name (case-insensitive), or a
    ``role=column`` spec (:func:`parse_column_spec`)."""
    if isinstance(columns, ColumnMap):
        return columns
    text = str(columns)
    if "=" in text:
        return parse_column_spec(text)
    preset = PARQUET_PRESETS.get(text.lower())
    if preset is None:
        raise ConfigError(
            f"unknown Parquet column preset {columns!r}; presets: {', '.join(sorted(PARQUET_PRESETS))} "
            "(or a spec original=COLUMN,edited=COLUMN,instruction=COLUMN, or a ColumnMap)"
        )
    return preset


def matching_presets(available: set[str]) -> list[str]:
    """The presets whose required columns (:attr:`ColumnMap.required`) are all in
    ``available``, by name."""
    return [
        name
        for name, preset in sorted(PARQUET_PRESETS.items())
        if set(preset.required.values()) <= available
    ]


def detect_column_map(file: Path) -> tuple[str, ColumnMap]:
    """The preset whose columns ``file`` has, by name and map. None or two candidates
    raise a :class:`~sigma_iml.errors.ManifestError` naming the file, its columns and
    the presets, and saying how to choose (``--columns``)."""
    available = parquet_columns(file)
    candidates = matching_presets(available)
    if len(candidates) == 1:
        return candidates[0], PARQUET_PRESETS[candidates[0]]
    if candidates:
        raise ManifestError(
            f"the columns of {file.name} fit several presets: {', '.join(candidates)}; choose "
            "one with --columns PRESET (Python: columns=...)",
            source=str(file),
        )
    presets = "; ".join(
        f"{name} ({', '.join(p.required.values())})" for name, p in sorted(PARQUET_PRESETS.items())
    )
    raise ManifestError(
        f"the columns of {file.name} ({', '.join(sorted(available))}) fit no preset; presets: "
        f"{presets}. Name the columns with --columns original=COLUMN,edited=COLUMN,"
        "instruction=COLUMN (Python: columns=ColumnMap(...))",
        source=str(file),
    )


def _has_parquet_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


def looks_like_parquet(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Parquet file, a folder holding one, or a glob matching one."""
    text = os.fspath(path)
    if is_path_pattern(text):
        try:
            return any(_has_parquet_magic(f) for f in files_of_pattern(text))
        except DataError:
            return False
    root = Path(text)
    if root.is_file():
        return _has_parquet_magic(root)
    if root.is_dir():
        return any(
            f.is_file() and not is_hidden(f, root) and _has_parquet_magic(f)
            for f in root.rglob("*.parquet")
        )
    return False


def iter_parquet(
    path: str | os.PathLike,
    *,
    columns: ColumnMap | str | None = None,
    batch_size: int = PARQUET_BATCH_ROWS,
) -> Iterator[PairRef]:
    """Stream :class:`PairRef` items out of Parquet files (see :func:`list_parquet_files`).

    ``columns`` is a :class:`ColumnMap`, a preset name or a ``role=column`` spec; left
    out, the preset is detected from the first file's schema (:func:`detect_column_map`).
    Only the mapped columns are read, ``batch_size`` rows at a time, so memory is bounded
    by one row group of those columns, not by the file. Each image becomes
    ``EncodedImage(bytes, name=f"{file.name} row {row} column {column}")``.

    A row with a null, empty or wrongly typed image becomes a :meth:`PairRef.invalid`
    naming file, row and column. A file lacking a required column, or that cannot be read,
    raises :class:`~sigma_iml.errors.ManifestError` / :class:`~sigma_iml.errors.DataError`
    naming the file, after every row of the files before it has been yielded.
    """
    # Not a generator itself: a bad preset, path or schema fails at the call, not at
    # first next().
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    files = list_parquet_files(path)
    if columns is None:
        _, column_map = detect_column_map(files[0])
    else:
        column_map = resolve_column_map(columns)
    return (ref for file in files for ref in _iter_parquet_file(file, column_map, batch_size))


def _iter_parquet_file(file: Path, column_map: ColumnMap, batch_size: int) -> Iterator[PairRef]:
    available = parquet_columns(file)
    missing = [
        f"{col!r} ({role})" for role, col in column_map.required.items() if col not in available
    ]
    if missing:
        fitting = matching_presets(available)
        hint = (
            f"its columns fit the preset(s) {', '.join(fitting)}: pass --columns {fitting[0]}"
            if fitting
            else "name the columns with --columns original=COLUMN,edited=COLUMN,instruction=COLUMN"
        )
        raise ManifestError(
            f"{file.name} has no column {', '.join(missing)}; its columns are "
            f"{', '.join(sorted(available))}; {hint}",
            source=str(file),
        )
    wanted = [c for c in column_map.all_columns if c in available]
    for row, cells in iter_parquet_rows(file, wanted, batch_size=batch_size):
        yield _ref_from_row(file, row, cells, column_map)


def image_from_cell(
    value: Any, name: str, *, required: bool, folder: Path | None = None
) -> tuple[EncodedImage | Path | None, str | None]:
    """The encoded image in one cell, or the problem with it. A missing optional image
    (a row without a mask) is no problem.

    A ``{bytes: None, path}`` struct (an image ``datasets`` kept as a local file) is the
    file ``folder / path`` when ``folder`` is given and the path stays inside it
    (:func:`~sigma_iml.data.formats.base.inside_dataset`); the file itself is read, and
    reported when missing, when the pair is decoded."""
    if isinstance(value, dict):
        if "bytes" not in value:
            return None, f"is a struct without a 'bytes' field (fields: {', '.join(value)})"
        data = value["bytes"]
        if data is None:
            path = value.get("path")
            if not path:
                return None, ("has no image bytes and no path" if required else None)
            if folder is None:
                return None, (
                    f"has no image bytes (only a file reference {path!r}); embed the images "
                    "in the rows"
                )
            location, why = inside_dataset(folder, path)
            if location is None:
                return None, (
                    f"has no image bytes and its file is refused ({why}); keep the image files "
                    f"under the parquet file's folder ({folder}) with paths relative to it, or "
                    "embed the images in the rows"
                )
            return location, None
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


def _ref_from_row(file: Path, row: int, cells: dict[str, Any], column_map: ColumnMap) -> PairRef:
    # Id columns absent from this file, or null in this row, fall back to the position.
    id_values = [cells.get(c) for c in column_map.id_columns]
    if id_values and all(v is not None and str(v) != "" for v in id_values):
        item_id = "-".join(str(v) for v in id_values)
    else:
        item_id = f"{file.stem}-{row}"
    source = row_source(file, row)
    problems: list[str] = []

    def image(column: str | None, required: bool) -> EncodedImage | Path | None:
        if column is None or column not in cells:
            return None
        encoded, problem = image_from_cell(
            cells[column], cell_name(file, row, column), required=required, folder=file.parent
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
        instruction, variants, problem = instruction_from_value(cells[column_map.instruction])
        if problem:
            problems.append(f"column {column_map.instruction!r} {problem}")
        if variants is not None:
            meta["instruction_variants"] = variants
    for column in column_map.meta_columns:
        if column in cells:
            meta[column] = cells[column]

    return ref_unless_problems(
        item_id,
        problems,
        source,
        original=original,
        edited=edited,
        instruction=instruction,
        mask=mask,
        meta=meta,
    )


def count_parquet(path: str | os.PathLike, **options: Any) -> int:
    """The number of rows behind ``path``, from the files' footers (the progress bar's
    total; every row becomes one item)."""
    return sum(parquet_row_count(file) for file in list_parquet_files(path))


register_format(
    "parquet",
    iter_parquet,
    looks_like_parquet,
    "Parquet in the Hugging Face layout, images as bytes in the rows or files beside them "
    "(columns= a preset: " + ", ".join(PARQUET_PRESETS) + ", a role=column spec or a "
    "ColumnMap; detected from the schema when left out)",
    count=count_parquet,
)


# --------------------------------------------------------------------------------------
# Helpers for the benchmark layouts stored as Hugging Face parquet (magicbrush, opensdi)
# --------------------------------------------------------------------------------------


def row_source(file: Path, row: int) -> str:
    """Where a row was listed: ``<file> row <n>``."""
    return f"{file} row {row}"


def cell_name(file: Path, row: int | str, column: str) -> str:
    """The name an image read from one cell carries into error messages."""
    return f"{file.name} row {row} column {column}"


def split_files(path: Path, split: str | None = None) -> list[Path]:
    """The parquet files behind ``path`` (see :func:`~sigma_iml.data.io.list_parquet_files`;
    none rather than an error); ``split`` keeps the files whose name starts with
    ``<split>-`` or ``<split>_`` (the Hugging Face shard naming, e.g.
    ``dev-00000-of-00001-....parquet``)."""
    try:
        files = list_parquet_files(path)
    except DataError:
        return []
    if split is not None:
        files = [f for f in files if re.match(rf"{re.escape(split)}[-_]", f.name)]
    return files


def file_problem(file: Path, required: tuple[str, ...]) -> str | None:
    """Why ``file`` cannot be read as a table with the ``required`` columns, or None."""
    try:
        missing = missing_columns(file, required)
    except DataError:
        return "not a readable parquet file"
    return f"lacks column(s) {', '.join(missing)}" if missing else None


def first_file_has_columns(path: Path, required: tuple[str, ...]) -> bool:
    """Whether the first parquet file behind ``path`` has every ``required`` column."""
    files = split_files(path)
    return bool(files) and file_problem(files[0], required) is None


def required_image(
    value: Any, file: Path, row: int | str, column: str
) -> tuple[EncodedImage | None, str | None]:
    """The image of a cell that must hold one, or ``(None, why)`` in the benchmark
    readers' words ("column mask is empty")."""
    image, _ = image_from_cell(value, cell_name(file, row, column), required=True)
    if image is not None:
        return image, None
    if value is None:
        return None, f"column {column} is empty"
    return None, f"column {column} holds no image bytes"
