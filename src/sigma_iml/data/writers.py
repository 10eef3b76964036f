"""Writing masks and records so that a killed run loses nothing.

Every file is written to a temporary name in the same folder and renamed into place
(``os.replace`` is atomic on POSIX), so a reader never sees half a file. Records are
appended one JSON line at a time and flushed to disk; a line torn by a crash is cut off
when the file is reopened.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_filename(item_id: str) -> str:
    """A file-system-safe stem for an item id. Ids that had to be changed get a short
    hash so that two ids never map to one file (``a/b`` and ``a_b`` differ)."""
    cleaned = _UNSAFE.sub("_", item_id).strip("._") or "item"
    if cleaned == item_id and len(cleaned) <= 150:
        return cleaned
    digest = hashlib.sha1(item_id.encode("utf-8")).hexdigest()[:10]
    return f"{cleaned[:140]}-{digest}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def encode_png(array: np.ndarray) -> bytes:
    """Lossless PNG bytes of an ``(H, W)`` uint8/bool or ``(H, W, 3)`` uint8 array."""
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """A binary mask as an 8-bit 0/255 PNG, at the mask's own size, atomically."""
    atomic_write_bytes(path, encode_png(np.asarray(mask, dtype=bool)))


def write_probability_png(path: Path, probability: np.ndarray) -> None:
    """A probability map as an 8-bit PNG (0..255 = 0..1), atomically."""
    scaled = np.clip(np.rint(np.asarray(probability, dtype=np.float32) * 255.0), 0, 255).astype(
        np.uint8
    )
    atomic_write_bytes(path, encode_png(scaled))


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
    """The records of a JSONL log, skipping a torn or invalid line."""
    if not Path(path).exists():
        return
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "id" in record:
                yield record
