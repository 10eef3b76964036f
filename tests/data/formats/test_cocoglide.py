"""The ``cocoglide`` format: CocoGlide in its published layout, on a tiny generated copy
(benchmark_fixtures.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from sigma_iml.data.formats.cocoglide import iter_cocoglide
from sigma_iml.data.pair import load_pair
from sigma_iml.errors import DataError

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "benchmark_fixtures", Path(__file__).with_name("benchmark_fixtures.py")
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def test_cocoglide_pairs_rows_of_table_csv(tmp_path):
    expected = fixtures.make_cocoglide(tmp_path)
    refs = list(iter_cocoglide(tmp_path))
    assert [r.id for r in fixtures.valid(refs)] == [e["id"] for e in expected]
    assert [r.edited for r in fixtures.valid(refs)] == [e["edited"] for e in expected]
    fixtures.check_decoded(refs, expected)


def test_cocoglide_rejects_escaping_paths_and_empty_fields(tmp_path):
    fixtures.make_cocoglide(tmp_path)
    problems = {r.id: r.problem for r in iter_cocoglide(tmp_path) if r.problem}
    assert "escapes the dataset folder" in problems["cocoglide_0004_7"]
    assert "row 4" in problems["cocoglide_0004_7"]
    assert problems["cocoglide_0005_8"] == "row 5: empty prompt"
    with pytest.raises(DataError, match="escapes the dataset folder"):
        load_pair(next(r for r in iter_cocoglide(tmp_path) if r.id == "cocoglide_0004_7"))


def test_cocoglide_rejects_absolute_paths_and_missing_columns(tmp_path):
    (tmp_path / "table.csv").write_text("real,fake,mask,prompt\n/etc/passwd,f.png,m.png,cat\n")
    [ref] = iter_cocoglide(tmp_path)
    assert "absolute" in ref.problem and ref.source.endswith("table.csv:2")
    (tmp_path / "table.csv").write_text("real,fake,prompt\na.png,b.png,cat\n")
    [ref] = iter_cocoglide(tmp_path)
    assert "lacks column(s) mask" in ref.problem


def test_cocoglide_missing_file_is_reported_at_decode_time(tmp_path):
    fixtures.make_cocoglide(tmp_path)
    next((tmp_path / "mask").glob("cake_*")).unlink()
    ref = next(r for r in iter_cocoglide(tmp_path) if r.id == "cocoglide_0002_493334")
    assert ref.problem is None
    with pytest.raises(DataError, match="file not found"):
        load_pair(ref)


def test_cocoglide_reads_real_data_with_the_shared_dev_ids(tmp_path):
    """Real CocoGlide files behind a table.csv: the ids are those of the shared subset
    (its first item is row 1 of the released table) and the masks decode non-empty."""
    dev = Path(__file__).resolve().parents[4] / "shared" / "data" / "cocoglide-dev"
    if not (dev / "manifest.jsonl").is_file():
        pytest.skip("../shared/data/cocoglide-dev is absent")
    first = json.loads((dev / "manifest.jsonl").read_text(encoding="utf-8").splitlines()[0])
    # lay the files out under their names in the released archive (source_paths)
    released = {kind: name.split("/", 1)[1] for kind, name in first["source_paths"].items()}
    for kind, name in released.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).symlink_to(dev / first[kind])
    row = f"{released['original']},{released['edited']},{released['mask']},{first['instruction']}"
    (tmp_path / "table.csv").write_text("real,fake,mask,prompt\n" + row + "\n", encoding="utf-8")
    [ref] = iter_cocoglide(tmp_path)
    assert ref.id == first["id"] and ref.instruction == first["instruction"]
    pair = load_pair(ref)
    assert pair.size == (first["width"], first["height"]) and pair.mask.mean() > 0.5
