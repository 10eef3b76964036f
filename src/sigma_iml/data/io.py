"""Bytes on disk: PNG encoding, atomic writes, the record log and parquet row iteration.

Every module of the package that writes a file or reads parquet rows does it through
here, so each rule below holds everywhere:

- One PNG encoder (:func:`encode_png`); callers choose only the zlib level.
- A file is written to a hidden, uniquely named temporary file in the same folder,
  flushed to disk and renamed into place (``os.replace`` is atomic on POSIX), so a reader
  never sees half a file and two writers of one path never share a temporary file
  (:func:`atomic_file`, :func:`atomic_write_bytes`).
- Records are appended one JSON line at a time and flushed to disk; a line torn by a
  crash is cut off when the file is reopened (:class:`RecordLog`).
- Text a user hands in (manifests, listings, instruction files) is read by its
  byte-order mark: UTF-8 with or without one, UTF-16 and UTF-32 with one; anything else
  that is not UTF-8 is a :class:`~sigma_iml.errors.DataError` naming the file
  (:func:`text_encoding`, :func:`open_text`, :func:`read_text`).
- Parquet files are listed, their columns checked and their rows streamed a few at a
  time (:func:`list_parquet_files`, :func:`parquet_columns`, :func:`iter_parquet_rows`);
  ``pyarrow`` is imported only when a parquet file is read.
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import hashlib
import io
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import numpy as np
from PIL import Image

from ..errors import DataError

# --------------------------------------------------------------------------- PNG

#: Image modes a PNG file holds as they are; others (CMYK, YCbCr, F, ...) become RGB.
PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})

#: zlib level of PNGs that go into archives (WebDataset shards): zlib's default, the
#: usual balance of size and time for files that are kept and shipped.
ARCHIVE_PNG_LEVEL = 6


def encode_png(image: np.ndarray | Image.Image, *, compress_level: int = 1) -> bytes:
    """Lossless PNG bytes of an image.

    ``image`` is an ``(H, W)`` uint8 or bool array (bool becomes 0/255), an
    ``(H, W, 3|4)`` uint8 array, or a PIL image. ``compress_level`` is zlib's 0-9: 1,
    the default, is fast, for the masks a bulk run writes per item; higher levels trade
    time for smaller files where files are kept (the pixels are the same at every level).
    """
    if isinstance(image, np.ndarray):
        if image.dtype == np.bool_:
            image = image.astype(np.uint8) * 255
        image = Image.fromarray(image)
    if image.mode not in PNG_MODES:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


# --------------------------------------------------------------------------- atomic writes


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path`` with a random name, opened for writing.

    Created with the usual permissions (``0o666`` less the umask), like any file the
    package writes, and never shared: ``O_EXCL`` refuses a name that exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(candidate, flags, 0o666), candidate
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces ``path`` when the block ends.

    The data goes to a temporary file beside ``path`` (see :func:`_create_temporary`),
    is flushed and fsynced, then renamed over ``path``. When the block raises, the
    temporary file is removed and ``path`` is left as it was."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = _create_temporary(target)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_temporaries(folder: str | os.PathLike, name_pattern: str) -> int:
    """Delete the hidden ``.<name>.<random>.tmp`` files that writes of the files matching
    ``name_pattern`` (a glob) left in ``folder`` when killed before their rename; the
    count removed. Only for a folder one writer owns (an export, a locked run): a
    temporary another writer is filling would be removed too."""
    removed = 0
    for stale in Path(folder).glob(f".{name_pattern}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed += 1
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make the renames in ``folder`` durable (POSIX); a no-op where folders cannot be
    opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """A binary mask as an 8-bit 0/255 PNG, at the mask's own size, atomically."""
    atomic_write_bytes(path, encode_png(np.asarray(mask, dtype=bool)))


def write_probability_png(path: Path, probability: np.ndarray) -> None:
    """A probability map as an 8-bit PNG (0..255 = 0..1), atomically."""
    scaled = np.clip(np.rint(np.asarray(probability, dtype=np.float32) * 255.0), 0, 255).astype(
        np.uint8
    )
    atomic_write_bytes(path, encode_png(scaled))


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_filename(item_id: str) -> str:
    """A file-system-safe stem for an item id. Ids that had to be changed get a short
    hash so that two ids never map to one file (``a/b`` and ``a_b`` differ)."""
    cleaned = _UNSAFE.sub("_", item_id).strip("._") or "item"
    if cleaned == item_id and len(cleaned) <= 150:
        return cleaned
    digest = hashlib.sha1(item_id.encode("utf-8")).hexdigest()[:10]
    return f"{cleaned[:140]}-{digest}"


# --------------------------------------------------------------------------- record log


class RecordLog:
    """An append-only JSONL file of per-item records that survives ``kill -9``.

    Opening it cuts a torn last line (a crash mid-write) so the next append starts on a
    fresh line; each append is flushed and fsynced before returning.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._handle = self.path.open("a", encoding="utf-8")

    def _repair(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                handle.truncate(cut)

    def append(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL log, skipping a torn or invalid line.

    Lines are read as bytes and decoded one at a time: a crash (or a full disk) can cut
    the last line inside a multi-byte UTF-8 character, and decoding the whole file
    strictly would then fail on every later read, so no run could be resumed, exported
    or reported. A line that is not valid UTF-8 or not JSON is skipped like any torn
    line; :class:`RecordLog` cuts it when the log is reopened."""
    if not Path(path).exists():
        return
    with Path(path).open("rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict) and "id" in record:
                yield record


# --------------------------------------------------------------------------- text files

#: Byte-order marks and the codec that reads past them. UTF-32's little-endian mark
#: starts with UTF-16's, so it is tried first.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def text_encoding(path: str | os.PathLike) -> str:
    """The codec of a text file: the one its byte-order mark names, else UTF-8.

    Spreadsheet programs save CSV with a UTF-8 mark (a plain ``utf-8`` read would turn
    the header ``id`` into ``\ufeffid`` and lose every id) and Windows tools save UTF-16
    with one; a mark is never part of the text."""
    with Path(path).open("rb") as handle:
        head = handle.read(4096)
    for mark, codec in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return codec
    if b"\x00" in head:  # valid UTF-8, but no text holds NUL: UTF-16/32 without a mark
        raise DataError(
            "holds NUL bytes: UTF-16 or UTF-32 text without a byte-order mark, or not text "
            "at all; save the file as UTF-8",
            source=str(path),
        )
    return "utf-8"


@contextlib.contextmanager
def open_text(path: str | os.PathLike, *, newline: str | None = None) -> Iterator[TextIO]:
    """A text handle on ``path`` decoded by :func:`text_encoding`. Bytes that do not
    decode, wherever the block reads them, raise a :class:`~sigma_iml.errors.DataError`
    naming the file and the codec instead of a ``UnicodeDecodeError``."""
    codec = text_encoding(path)
    try:
        with Path(path).open(encoding=codec, newline=newline) as handle:
            yield handle
    except UnicodeDecodeError as err:
        shown = "UTF-8" if codec.startswith("utf-8") else codec.upper()
        raise DataError(
            f"not valid {shown} text ({err.reason}); save the file as UTF-8 (UTF-16 and "
            "UTF-32 are read only with a byte-order mark)",
            source=str(path),
        ) from None


def read_text(path: str | os.PathLike) -> str:
    """The whole of a text file, decoded as :func:`open_text` does."""
    with open_text(path) as handle:
        return handle.read()


# --------------------------------------------------------------------------- listing inputs

_GLOB_CHARACTERS = re.compile(r"[*?\[]")
_BRACES = re.compile(r"\{([^{}]*)\}")


def is_glob_pattern(text: str) -> bool:
    return bool(_GLOB_CHARACTERS.search(text))


def is_brace_pattern(text: str) -> bool:
    """Whether ``text`` holds a ``{first..last}`` range or an ``{a,b}`` list."""
    return any(".." in body or "," in body for body in _BRACES.findall(text))


def is_path_pattern(text: str) -> bool:
    """Whether a dataset path is a pattern (glob or braces) rather than one file or folder."""
    return is_glob_pattern(text) or is_brace_pattern(text)


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{000..009}`` ranges and ``{a,b}`` lists as ``webdataset`` URLs do, in
    pattern order (zero padding is kept)."""
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
        raise DataError(
            f"cannot expand {{{body}}}: expected {{first..last}} or {{a,b,...}}", source=pattern
        )
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for alt in alternatives for expanded in expand_braces(head + alt + tail)]


def files_matching(pattern: str) -> list[Path]:
    """The files a glob pattern matches (``**`` recursive), sorted."""
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())


def files_of_pattern(pattern: str) -> list[Path]:
    """The files behind a glob and/or brace pattern: braces expanded in pattern order,
    each expansion a glob's sorted matches or one file. A brace expansion naming no
    file is a :class:`~sigma_iml.errors.DataError` (a shard missing from a numbered
    series is a broken download, not something to skip)."""
    files: list[Path] = []
    for expanded in expand_braces(pattern) if is_brace_pattern(pattern) else [pattern]:
        if is_glob_pattern(expanded):
            files += files_matching(expanded)
        elif Path(expanded).is_file():
            files.append(Path(expanded))
        else:
            raise DataError("file not found (named by the pattern)", source=expanded)
    return files


def is_hidden(path: Path, root: Path) -> bool:
    """Hidden files and folders (``.cache/`` of ``huggingface-cli download``, the
    temporary files of :func:`atomic_file`) never belong to a dataset."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def list_inputs(
    path: str | os.PathLike, accept: Callable[[Path], bool], none_in_folder: str
) -> list[Path]:
    """The files behind a glob or brace pattern (:func:`files_of_pattern`), one file, or
    a folder (recursively, sorted, hidden entries skipped, only files ``accept`` takes);
    ``none_in_folder`` is the :class:`~sigma_iml.errors.DataError` when a folder holds
    none."""
    text = os.fspath(path)
    if is_path_pattern(text):
        files = files_of_pattern(text)
        if not files:
            raise DataError("no file matches this pattern", source=text)
        return files
    root = Path(text)
    if root.is_file():
        return [root]
    if root.is_dir():
        files = sorted(
            f for f in root.rglob("*") if f.is_file() and accept(f) and not is_hidden(f, root)
        )
        if not files:
            raise DataError(none_in_folder, source=text)
        return files
    raise DataError("no such file or folder", source=text)


# --------------------------------------------------------------------------- parquet

#: Rows per parquet batch. Small, because every row of an image corpus carries several
#: encoded images.
PARQUET_BATCH_ROWS = 16


def list_parquet_files(path: str | os.PathLike) -> list[Path]:
    """The parquet files behind ``path``: one file, every ``*.parquet`` under a folder
    (recursively, sorted, hidden folders skipped), a glob pattern's matches (sorted) or a
    brace pattern's files (``train-{00000..00009}.parquet``, in pattern order).

    A Hugging Face snapshot keeps every split under ``data/``; pass a glob such as
    ``data/train-*.parquet`` to read one split.
    """
    return list_inputs(path, lambda f: f.suffix == ".parquet", "folder holds no .parquet file")


def parquet_columns(file: Path) -> set[str]:
    """The column names of a parquet file, read from its footer only; a
    :class:`~sigma_iml.errors.DataError` naming the file when it cannot be read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(file) as parquet:
            return set(parquet.schema_arrow.names)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"not a readable Parquet file: {err}", source=str(file)) from err


def parquet_row_count(file: Path) -> int:
    """The number of rows of a parquet file, from its footer (no row is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(file) as parquet:
            return int(parquet.metadata.num_rows)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"not a readable Parquet file: {err}", source=str(file)) from err


def missing_columns(file: Path, required: Iterable[str]) -> list[str]:
    """The ``required`` columns ``file`` lacks, in the order given (see
    :func:`parquet_columns` for an unreadable file)."""
    available = parquet_columns(file)
    return [column for column in required if column not in available]


def iter_parquet_rows(
    file: Path, columns: list[str], *, batch_size: int = PARQUET_BATCH_ROWS
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row index in the file, {column: value})`` for ``columns``, read ``batch_size``
    rows at a time, so memory holds one batch of those columns, not the file.

    A file that cannot be opened, or whose rows stop reading part way, raises a
    :class:`~sigma_iml.errors.DataError` naming it (and the first row not read), after
    every row before it has been yielded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"not a readable Parquet file: {err}", source=str(file)) from err
    try:
        batches = parquet.iter_batches(batch_size=batch_size, columns=columns)
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
            for offset, row in enumerate(batch.to_pylist()):
                yield first_row + offset, row
            first_row += batch.num_rows
    finally:
        parquet.close()
