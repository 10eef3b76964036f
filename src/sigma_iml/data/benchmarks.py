"""Readers for the SIGMA paper's five evaluation benchmarks, in their published layouts.

Each benchmark has ``iter_<name>(path, **options) -> Iterator[PairRef]`` and a sniffer
``looks_like_<name>(path) -> bool``; :data:`BENCHMARK_READERS` and
:data:`BENCHMARK_SNIFFERS` map the format names (``cocoglide``, ``autosplice``,
``magicbrush``, ``deal300k``, ``opensdi``) to them. ``docs/benchmarks.md`` describes every
layout and the sources it was taken from.

Common rules:

- Readers stream: folders are listed by name, parquet files are read batch by batch
  (``ParquetFile.iter_batches``) and image bytes are handed on as
  :class:`~sigma_iml.data.images.EncodedImage` without decoding. The one exception is
  MagicBrush's brush mask, decoded per row to turn it into a ground-truth mask.
- A row that cannot be understood (missing column or field, unparseable name, a path
  leaving the dataset folder, a repeated id) becomes ``PairRef.invalid`` with a message
  that names the row; missing or corrupt image files are reported later, when
  :func:`~sigma_iml.data.pair.load_pair` decodes them.
- Ids are unique within one read and stable across reads of the same data.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ImageDecodeError
from .images import EncodedImage, load_image
from .pair import PairRef
from .readers import inside_dataset

__all__ = [
    "BENCHMARK_READERS",
    "BENCHMARK_SNIFFERS",
    "MAGICBRUSH_MASK_RULES",
    "iter_autosplice",
    "iter_cocoglide",
    "iter_deal300k",
    "iter_magicbrush",
    "iter_opensdi",
    "looks_like_autosplice",
    "looks_like_cocoglide",
    "looks_like_deal300k",
    "looks_like_magicbrush",
    "looks_like_opensdi",
    "magicbrush_edit_mask",
]

#: Rows per parquet batch. Small, because every row carries several encoded images.
PARQUET_BATCH_ROWS = 16

# --------------------------------------------------------------------------- helpers


class _IdRegistry:
    """Turns a repeated id into an invalid ref instead of silently merging two items."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def check(self, ref: PairRef) -> PairRef:
        first = self._seen.get(ref.id)
        if first is None:
            self._seen[ref.id] = ref.source or ""
            return ref
        return PairRef.invalid(
            f"{ref.id}#dup@{ref.source}",
            f"id {ref.id!r} repeats the item listed at {first}",
            ref.source,
        )


def _parquet_files(path: Path, split: str | None = None) -> list[Path]:
    """A parquet file itself, or every ``*.parquet`` below a folder in a stable order;
    ``split`` keeps the files whose name starts with ``<split>-`` or ``<split>_`` (the
    Hugging Face shard naming, e.g. ``dev-00000-of-00001-....parquet``)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if split is not None:
        files = [f for f in files if re.match(rf"{re.escape(split)}[-_]", f.name)]
    return files


def _parquet_columns(file: Path) -> set[str] | None:
    import pyarrow.parquet as pq

    try:
        return set(pq.read_schema(file).names)
    except Exception:  # unreadable or not parquet at all
        return None


def _missing_columns(file: Path, required: Iterable[str]) -> str | None:
    """Why ``file`` cannot be read as a table with the ``required`` columns, or None."""
    columns = _parquet_columns(file)
    if columns is None:
        return "not a readable parquet file"
    missing = [c for c in required if c not in columns]
    return f"lacks column(s) {', '.join(missing)}" if missing else None


def _iter_parquet_rows(file: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row index in file, row)`` for ``columns``, a few rows in memory at a time."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file)
    row = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
        for record in batch.to_pylist():
            yield row, record
            row += 1


def _encoded(
    value: Any, file: Path, row: int, column: str
) -> tuple[EncodedImage | None, str | None]:
    """A Hugging Face ``Image`` cell (``{"bytes": ..., "path": ...}`` or raw bytes) as an
    :class:`EncodedImage`, or ``(None, why)``."""
    if isinstance(value, dict):
        data = value.get("bytes")
    else:
        data = value
    if isinstance(data, (bytes, bytearray)) and len(data) > 0:
        return EncodedImage(bytes(data), name=f"{file.name} row {row} column {column}"), None
    if value is None:
        return None, f"column {column} is empty"
    return None, f"column {column} holds no image bytes"


def _source(file: Path, row: int) -> str:
    return f"{file} row {row}"


# -------------------------------------------------------------------------- CocoGlide

_GLIDE_FAKE = re.compile(r"glide_inpainting_val2017_(\d+)_up$")
COCOGLIDE_COLUMNS = ("real", "fake", "mask", "prompt")


def iter_cocoglide(path: Path) -> Iterator[PairRef]:
    """CocoGlide as released with TruFor (Guillaro et al., CVPR 2023).

    Layout (``path`` is the ``CocoGlide`` folder)::

        table.csv          columns real, fake, mask, prompt (UTF-8, may start with a BOM)
        real/<class>_<coco id>.png                        original (COCO val2017 crop)
        fake/glide_inpainting_val2017_<coco id>_up.png    GLIDE inpainting result
        mask/<class>_<coco id>_mask.png                   8-bit mask, white = inpainted

    The three file names differ, so pairs come only from ``table.csv`` rows, never from
    matching names. The instruction is the GLIDE text prompt (the COCO class name).
    Ids are ``cocoglide_<row>_<coco id>`` with the 1-based data row, four digits, as in
    ``../shared/data/cocoglide-dev`` (which holds the odd rows), so results line up;
    a fake name that is not GLIDE's gives ``cocoglide_<row>_<fake file stem>``.
    """
    root = Path(path)
    table = root / "table.csv"
    ids = _IdRegistry()
    with open(table, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [c for c in COCOGLIDE_COLUMNS if c not in header]
        if missing:
            yield PairRef.invalid(
                "cocoglide_table",
                f"table.csv lacks column(s) {', '.join(missing)} (has {', '.join(header) or 'none'})",
                str(table),
            )
            return
        for row_number, raw in enumerate(reader, start=1):
            record = {(k or "").strip(): (v or "") for k, v in raw.items()}
            source = f"{table}:{row_number + 1}"  # +1: the header is line 1
            fake_name = record["fake"].strip()
            stem = PurePosixPath(fake_name.replace("\\", "/")).stem or f"row{row_number}"
            match = _GLIDE_FAKE.fullmatch(stem)
            item_id = f"cocoglide_{row_number:04d}_{match.group(1) if match else stem}"
            empty = [c for c in COCOGLIDE_COLUMNS if not record[c].strip()]
            if empty:
                yield ids.check(
                    PairRef.invalid(item_id, f"row {row_number}: empty {', '.join(empty)}", source)
                )
                continue
            resolved: dict[str, Path] = {}
            problem = None
            for column in ("real", "fake", "mask"):
                location, why = inside_dataset(root, record[column])
                if location is None:
                    problem = f"row {row_number}, column {column}: {why}"
                    break
                resolved[column] = location
            if problem:
                yield ids.check(PairRef.invalid(item_id, problem, source))
                continue
            yield ids.check(
                PairRef(
                    id=item_id,
                    original=resolved["real"],
                    edited=resolved["fake"],
                    instruction=record["prompt"].strip(),
                    mask=resolved["mask"],
                    source=source,
                    meta={
                        "benchmark": "cocoglide",
                        "coco_id": int(match.group(1)) if match else None,
                    },
                )
            )


def looks_like_cocoglide(path: Path) -> bool:
    table = Path(path) / "table.csv"
    if not table.is_file():
        return False
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return set(COCOGLIDE_COLUMNS) <= {name.strip() for name in header}


# ------------------------------------------------------------------------- AutoSplice

_AUTOSPLICE_FORGED = re.compile(r"(?P<image_id>[^_]+)_(?P<variant>[^_]+)")
AUTOSPLICE_INSTRUCTIONS = ("edited_caption", "user_term")


def _autosplice_captions(folder: Path) -> dict[str, dict[str, Any]]:
    """``Caption/*.json`` by image id; small text files, read once up front."""
    captions: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return captions
    for file in sorted(folder.glob("*.json")):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
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
    ids = _IdRegistry()
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


# ------------------------------------------------------------------------- MagicBrush

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


def _binary_png(mask: np.ndarray, name: str) -> EncodedImage:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
    return EncodedImage(buffer.getvalue(), name=name)


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
    ids = _IdRegistry()
    files = _parquet_files(Path(path), split)
    if not files:
        yield PairRef.invalid("magicbrush", f"no parquet files found under {path}", str(path))
        return
    for file in files:
        why = _missing_columns(file, MAGICBRUSH_COLUMNS)
        if why:
            yield ids.check(
                PairRef.invalid(f"magicbrush_file_{file.stem}", f"{file.name} {why}", str(file))
            )
            continue
        for row, record in _iter_parquet_rows(file, list(MAGICBRUSH_COLUMNS)):
            ref = _magicbrush_ref(file, row, record, mask_rule, first_turn_only)
            if ref is not None:
                yield ids.check(ref)


def _magicbrush_ref(
    file: Path, row: int, record: dict[str, Any], mask_rule: str, first_turn_only: bool
) -> PairRef | None:
    source = _source(file, row)
    image_id, turn = record.get("img_id"), record.get("turn_index")
    fallback_id = f"magicbrush_{file.stem}_row{row}"
    if image_id in (None, "") or turn is None:
        return PairRef.invalid(fallback_id, f"row {row}: img_id or turn_index is empty", source)
    if first_turn_only and int(turn) != 1:
        return None
    item_id = f"magicbrush_{image_id}_t{int(turn)}"
    instruction = record.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        return PairRef.invalid(item_id, f"row {row}: instruction is empty", source)
    images: dict[str, EncodedImage] = {}
    for column in ("source_img", "target_img", "mask_img"):
        encoded, why = _encoded(record.get(column), file, row, column)
        if encoded is None:
            return PairRef.invalid(item_id, f"row {row}: {why}", source)
        images[column] = encoded
    try:
        edited_region = magicbrush_edit_mask(images["mask_img"], mask_rule)
        mask: EncodedImage = _binary_png(
            edited_region, f"{images['mask_img'].name} ({mask_rule} rule)"
        )
    except (OSError, ValueError, SyntaxError, ImageDecodeError):
        mask = images["mask_img"]  # undecodable: load_pair names the corrupt cell
    return PairRef(
        id=item_id,
        original=images["source_img"],
        edited=images["target_img"],
        instruction=instruction.strip(),
        mask=mask,
        source=source,
        meta={"benchmark": "magicbrush", "img_id": str(image_id), "turn_index": int(turn)},
    )


def looks_like_magicbrush(path: Path) -> bool:
    files = _parquet_files(Path(path))
    columns = _parquet_columns(files[0]) if files else None
    return columns is not None and set(MAGICBRUSH_COLUMNS) <= columns


# -------------------------------------------------------------------------- DEAL-300K

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
            records = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
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
    ids = _IdRegistry()
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


# ---------------------------------------------------------------------------- OpenSDI

OPENSDI_COLUMNS = ("key", "image", "mask", "label")


@dataclass(frozen=True)
class _RowAddress:
    file: Path
    row_group: int
    row_in_group: int
    key: str


class _ParquetCellFetcher:
    """Reads single cells by (file, row group, row), keeping a couple of row groups'
    column in memory: originals are looked up out of order, and re-reading a whole row
    group per lookup would read the dataset many times over."""

    def __init__(self, column: str, cached_groups: int = 2) -> None:
        self.column = column
        self.cached_groups = cached_groups
        self._cache: OrderedDict[tuple[Path, int], list[Any]] = OrderedDict()
        self._files: dict[Path, Any] = {}

    def get(self, address: _RowAddress) -> Any:
        import pyarrow.parquet as pq

        slot = (address.file, address.row_group)
        if slot not in self._cache:
            parquet = self._files.setdefault(address.file, pq.ParquetFile(address.file))
            column = parquet.read_row_group(address.row_group, columns=[self.column])
            self._cache[slot] = column.column(0).to_pylist()
            while len(self._cache) > self.cached_groups:
                self._cache.popitem(last=False)
        self._cache.move_to_end(slot)
        return self._cache[slot][address.row_in_group]


def _opensdi_parts(key: str) -> tuple[str, str, str, str]:
    """``(scope, generator, kind, stem)`` of a key such as
    ``partial/sd15/fake/000651821.jpg``; missing parts are empty strings."""
    parts = PurePosixPath(key).parts
    stem = PurePosixPath(key).stem
    scope = parts[0] if len(parts) >= 4 else ""
    generator = parts[-3] if len(parts) >= 3 else ""
    kind = parts[-2] if len(parts) >= 2 else ""
    return scope, generator, kind, stem


def _is_fake(label: Any, kind: str) -> bool:
    if isinstance(label, str):
        return label.strip().lower() == "fake"
    if label is None:
        return kind == "fake"
    return int(label) == 1


def iter_opensdi(
    path: Path,
    *,
    split: str | None = None,
    original_dir: Path | None = None,
    include_full: bool = False,
) -> Iterator[PairRef]:
    """OpenSDI's test set (Wang et al., CVPR 2025) as the Hugging Face dataset
    ``nebula/OpenSDI_test`` (training set: ``nebula/OpenSDI_train``).

    Layout: ``path`` is the dataset folder (every ``*.parquet`` below it; shards are
    ``data/<split>-NNNNN-of-NNNNN.parquet`` with one split per generator: sd15, sd2,
    sdxl, sd3, flux) or one file; ``split`` keeps one generator's shards. Columns::

        key    string   e.g. partial/sd15/fake/000651821.jpg
        image  image    {"bytes", "path"}
        mask   image    white = generated, may be null
        label  class    0 = real, 1 = fake

    OpenSDI has no instructions (``instruction`` is None) and no explicit original.
    Pairs are formed, as our documented assumption, for the local edits
    (``partial/.../fake/`` keys): the original is the real row whose file stem equals
    the fake's (same generator preferred), else ``original_dir/<stem>.*`` (e.g. the
    megalith-10m source photos) when given. A fake with no original found still gets a
    ref, with ``original=None``: ``load_pair`` reports "no original image given" unless
    called with ``require_original=False``. Fully generated images (other fake keys)
    have no original at all and are skipped unless ``include_full``. Real rows serve
    only as originals. A first pass reads only the ``key`` and ``label`` columns to
    index the real rows; images are read batch by batch. Ids are
    ``opensdi_<key with / as _, no extension>``.
    """
    ids = _IdRegistry()
    files = _parquet_files(Path(path), split)
    if not files:
        yield PairRef.invalid("opensdi", f"no parquet files found under {path}", str(path))
        return
    usable: list[Path] = []
    for file in files:
        why = _missing_columns(file, OPENSDI_COLUMNS)
        if why:
            yield ids.check(
                PairRef.invalid(f"opensdi_file_{file.stem}", f"{file.name} {why}", str(file))
            )
        else:
            usable.append(file)
    reals = _index_opensdi_reals(usable)
    fetch_real = _ParquetCellFetcher("image")
    for file in usable:
        for row, record in _iter_parquet_rows(file, list(OPENSDI_COLUMNS)):
            ref = _opensdi_ref(file, row, record, reals, fetch_real, original_dir, include_full)
            if ref is not None:
                yield ids.check(ref)


def _index_opensdi_reals(files: Iterable[Path]) -> dict[str, list[_RowAddress]]:
    import pyarrow.parquet as pq

    reals: dict[str, list[_RowAddress]] = {}
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=["key", "label"])
            keys, labels = table.column("key").to_pylist(), table.column("label").to_pylist()
            for index, (key, label) in enumerate(zip(keys, labels, strict=True)):
                if not key:
                    continue
                _, _, kind, stem = _opensdi_parts(key)
                if not _is_fake(label, kind):
                    reals.setdefault(stem, []).append(_RowAddress(file, group, index, key))
    return reals


def _opensdi_ref(
    file: Path,
    row: int,
    record: dict[str, Any],
    reals: dict[str, list[_RowAddress]],
    fetch_real: _ParquetCellFetcher,
    original_dir: Path | None,
    include_full: bool,
) -> PairRef | None:
    source = _source(file, row)
    key = record.get("key")
    if not key:
        return PairRef.invalid(f"opensdi_{file.stem}_row{row}", f"row {row}: key is empty", source)
    scope, generator, kind, stem = _opensdi_parts(key)
    item_id = "opensdi_" + os.path.splitext(key)[0].replace("/", "_")
    if not _is_fake(record.get("label"), kind):
        return None
    is_local_edit = scope == "partial"
    if not is_local_edit and not include_full:
        return None
    edited, why = _encoded(record.get("image"), file, row, "image")
    if edited is None:
        return PairRef.invalid(item_id, f"row {row}: {why}", source)
    mask, why = _encoded(record.get("mask"), file, row, "mask")
    if mask is None:
        return PairRef.invalid(item_id, f"row {row} (fake): {why}", source)
    original: EncodedImage | Path | None = None
    original_key = None
    if is_local_edit:
        candidates = reals.get(stem, [])
        same_generator = [c for c in candidates if generator in PurePosixPath(c.key).parts]
        chosen = (same_generator or candidates or [None])[0]
        if chosen is not None:
            original, _ = _encoded(fetch_real.get(chosen), chosen.file, -1, "image")
            if original is not None:
                original = EncodedImage(original.data, name=f"{chosen.file.name} key {chosen.key}")
                original_key = chosen.key
        if original is None and original_dir is not None:
            matches = sorted(Path(original_dir).glob(f"{stem}.*"))
            original = matches[0] if matches else None
    return PairRef(
        id=item_id,
        original=original,
        edited=edited,
        instruction=None,
        mask=mask,
        source=source,
        meta={
            "benchmark": "opensdi",
            "key": key,
            "generator": generator,
            "local_edit": is_local_edit,
            "original_key": original_key,
        },
    )


def looks_like_opensdi(path: Path) -> bool:
    files = _parquet_files(Path(path))
    columns = _parquet_columns(files[0]) if files else None
    return columns is not None and set(OPENSDI_COLUMNS) <= columns


# --------------------------------------------------------------------------- registry

BENCHMARK_READERS: dict[str, Callable[..., Iterator[PairRef]]] = {
    "cocoglide": iter_cocoglide,
    "autosplice": iter_autosplice,
    "magicbrush": iter_magicbrush,
    "deal300k": iter_deal300k,
    "opensdi": iter_opensdi,
}

BENCHMARK_SNIFFERS: dict[str, Callable[[Path], bool]] = {
    "cocoglide": looks_like_cocoglide,
    "autosplice": looks_like_autosplice,
    "magicbrush": looks_like_magicbrush,
    "deal300k": looks_like_deal300k,
    "opensdi": looks_like_opensdi,
}


def _register_formats() -> None:
    from .readers import register_format

    for name, reader in BENCHMARK_READERS.items():
        summary = (inspect.getdoc(reader) or name).strip().splitlines()[0]
        register_format(name, reader, BENCHMARK_SNIFFERS[name], summary)


_register_formats()
