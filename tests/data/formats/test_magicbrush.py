"""The ``magicbrush`` format: MagicBrush in its published layout, on a tiny generated copy
(benchmark_fixtures.py)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sigma_iml.data.formats.magicbrush import iter_magicbrush
from sigma_iml.data.images import EncodedImage
from sigma_iml.data.pair import load_pair
from sigma_iml.errors import DataError

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "benchmark_fixtures", Path(__file__).with_name("benchmark_fixtures.py")
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def test_magicbrush_reads_split_shards_and_converts_brush_masks(tmp_path):
    expected = fixtures.make_magicbrush(tmp_path)
    refs = list(iter_magicbrush(tmp_path, split="dev"))
    assert [r.id for r in refs] == [e["id"] for e in expected]
    assert all(isinstance(r.original, EncodedImage) for r in refs)
    assert "dev-00000-of-00002-aaaa.parquet row 0 column source_img" == refs[0].original.name
    # first shard: photo painted white; second: RGBA transparent where brushed
    fixtures.check_decoded(refs, expected)
    assert len(list(iter_magicbrush(tmp_path))) == len(expected) + 1  # + the train shard


def test_magicbrush_mask_rule_matters(tmp_path):
    """The painted-photo mask read with the plain mean > 127.5 rule would be wrong;
    forcing the alpha rule on it must fail loudly rather than guess."""
    fixtures.make_magicbrush(tmp_path)
    painted = next(iter(iter_magicbrush(tmp_path, split="dev")))
    assert painted.mask.name.endswith("(auto rule)")
    refs = list(
        iter_magicbrush(tmp_path / "data" / "dev-00000-of-00002-aaaa.parquet", mask_rule="alpha")
    )
    assert refs[0].mask.name.endswith("column mask_img")  # not converted: passed on raw
    with pytest.raises(ValueError):
        list(iter_magicbrush(tmp_path, mask_rule="mean"))


def test_magicbrush_first_turn_only(tmp_path):
    fixtures.make_magicbrush(tmp_path)
    refs = list(iter_magicbrush(tmp_path, split="dev", first_turn_only=True))
    assert refs and all(r.meta["turn_index"] == 1 for r in refs)


def test_magicbrush_malformed_rows_name_the_row(tmp_path):
    file = fixtures.make_magicbrush_malformed(tmp_path)
    refs = list(iter_magicbrush(file))
    assert refs[0].problem is None
    # The source names the row; the problem does not repeat it ("row 1: row 1: ...").
    assert refs[1].problem == "column target_img is empty"
    assert refs[1].source == f"{file} row 1"
    assert refs[2].problem == "instruction is empty"
    with pytest.raises(DataError) as caught:
        load_pair(refs[1])
    assert str(caught.value).count("row 1") == 1


def test_magicbrush_missing_columns_and_duplicate_ids(tmp_path):
    pq.write_table(pa.table({"img_id": ["1"], "instruction": ["x"]}), tmp_path / "dev-0.parquet")
    [ref] = iter_magicbrush(tmp_path)
    assert "lacks column(s)" in ref.problem and "source_img" in ref.problem
    rows, _ = fixtures.magicbrush_rows(1)
    table = pa.Table.from_pylist(rows + rows, schema=fixtures.MAGICBRUSH_SCHEMA)
    pq.write_table(table, tmp_path / "dev-0.parquet")
    first, second = iter_magicbrush(tmp_path)
    assert first.problem is None and "repeats" in second.problem and second.id != first.id


def test_magicbrush_streams_a_large_file(tmp_path, monkeypatch):
    """The first pair comes after one small batch, not after reading the whole file."""
    rows, _ = fixtures.magicbrush_rows(8)
    table = pa.Table.from_pylist(rows * 50, schema=fixtures.MAGICBRUSH_SCHEMA)  # 400 rows
    pq.write_table(table, tmp_path / "dev-00000-of-00001.parquet", row_group_size=20)
    batches = []
    original_iter_batches = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in original_iter_batches(self, *args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    monkeypatch.setattr(
        pq, "read_table", lambda *a, **k: pytest.fail("read_table loads everything")
    )
    first = list(itertools.islice(iter_magicbrush(tmp_path), 3))
    assert [r.problem for r in first] == [None, None, None]
    assert sum(batches) < 40, batches
