"""Bytes on disk: the one PNG encoder, the atomic writer, the record log, parquet rows."""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from itertools import islice

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sigma_iml.data.io import (
    RecordLog,
    atomic_file,
    atomic_write_bytes,
    atomic_write_text,
    encode_png,
    iter_parquet_rows,
    list_parquet_files,
    missing_columns,
    parquet_columns,
    read_records,
    safe_filename,
)
from sigma_iml.errors import DataError


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_encode_png_masks_arrays_and_images():
    mask = np.array([[True, False], [False, True]])
    decoded = _decoded(encode_png(mask))
    assert decoded.mode == "L" and np.asarray(decoded).tolist() == [[255, 0], [0, 255]]
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for level in (1, 3, 6, 9):
        np.testing.assert_array_equal(
            np.asarray(_decoded(encode_png(rgb, compress_level=level))), rgb
        )
    cmyk = Image.fromarray(rgb).convert("CMYK")  # a mode PNG cannot hold becomes RGB
    assert _decoded(encode_png(cmyk)).mode == "RGB"


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_two_writers_of_one_path_never_share_a_temporary_file(tmp_path):
    """A fixed temporary name would let one writer rename the other's half file."""
    target = tmp_path / "file.bin"
    inside = threading.Barrier(2)
    temporaries: list[str] = []

    def write(data: bytes) -> None:
        with atomic_file(target) as handle:
            temporaries.append(handle.name)
            handle.write(data)
            inside.wait(timeout=10)

    threads = [threading.Thread(target=write, args=(b"a" * 1000,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(temporaries)) == 2
    assert target.read_bytes() == b"a" * 1000
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "file.bin", b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "file.bin").stat().st_mode) == 0o644


def test_record_log_cuts_a_torn_line(tmp_path):
    path = tmp_path / "records.jsonl"
    with RecordLog(path) as log:
        log.append({"id": "a", "value": 1})
    with path.open("a") as handle:
        handle.write('{"id": "b", "val')  # a crash mid-write
    assert [r["id"] for r in read_records(path)] == ["a"]
    with RecordLog(path) as log:
        log.append({"id": "c"})
    assert [r["id"] for r in read_records(path)] == ["a", "c"]
    assert list(read_records(tmp_path / "missing.jsonl")) == []


def test_a_line_torn_inside_a_utf8_character_is_skipped_and_cut(tmp_path):
    """A full disk can cut the last record inside a multi-byte character (a Chinese
    instruction); the log must still read, and reopening it must cut that line."""
    path = tmp_path / "records.jsonl"
    with RecordLog(path) as log:
        log.append({"id": "a", "instruction": "把猫换成狗"})
    torn = json.dumps({"id": "b", "instruction": "把猫换成狗"}, ensure_ascii=False).encode()
    with path.open("ab") as handle:
        handle.write(torn[: torn.index("猫".encode()) + 1])  # mid-character
    assert [r["instruction"] for r in read_records(path)] == ["把猫换成狗"]
    with RecordLog(path) as log:
        log.append({"id": "c"})
    assert [r["id"] for r in read_records(path)] == ["a", "c"]


def test_safe_filename():
    assert safe_filename("pair_001") == "pair_001"
    assert safe_filename("a/b") != safe_filename("a_b")
    assert "/" not in safe_filename("a/b") and safe_filename("a/b").startswith("a_b-")


def test_parquet_listing_columns_and_rows(tmp_path):
    table = pa.table({"a": list(range(40)), "b": [str(i) for i in range(40)]})
    pq.write_table(table, tmp_path / "x.parquet")
    (tmp_path / ".cache").mkdir()
    pq.write_table(table, tmp_path / ".cache" / "hidden.parquet")
    (tmp_path / "only-hidden" / ".cache").mkdir(parents=True)
    pq.write_table(table, tmp_path / "only-hidden" / ".cache" / "hidden.parquet")
    assert list_parquet_files(tmp_path) == [tmp_path / "x.parquet"]  # .cache/ is skipped
    file = tmp_path / "x.parquet"
    assert parquet_columns(file) == {"a", "b"}
    assert missing_columns(file, ["b", "c", "a", "d"]) == ["c", "d"]
    rows = list(islice(iter_parquet_rows(file, ["b"], batch_size=8), 10))
    assert rows[9] == (9, {"b": "9"})
    with pytest.raises(DataError, match="folder holds no .parquet file"):
        list_parquet_files(tmp_path / "only-hidden")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not parquet PAR1")
    for read in (parquet_columns, lambda f: list(iter_parquet_rows(f, ["a"]))):
        with pytest.raises(DataError, match="not a readable Parquet file") as caught:
            read(bad)
        assert caught.value.source == str(bad)
