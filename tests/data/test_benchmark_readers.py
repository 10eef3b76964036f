"""Readers of the five benchmark layouts, on tiny generated copies (benchmark_fixtures.py)."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sigma_iml.data.formats import DATASET_FORMATS
from sigma_iml.data.formats.autosplice import iter_autosplice
from sigma_iml.data.formats.cocoglide import iter_cocoglide
from sigma_iml.data.formats.deal300k import iter_deal300k
from sigma_iml.data.formats.magicbrush import iter_magicbrush
from sigma_iml.data.formats.opensdi import iter_opensdi
from sigma_iml.data.images import EncodedImage
from sigma_iml.data.pair import load_pair
from sigma_iml.data.readers import detect_format
from sigma_iml.errors import DataError

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "benchmark_fixtures", Path(__file__).with_name("benchmark_fixtures.py")
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def _valid(refs):
    return [r for r in refs if r.problem is None]


def _check_decoded(refs, expected, *, require_original=True):
    by_id = {r.id: r for r in refs}
    assert set(by_id) >= {e["id"] for e in expected}
    for item in expected:
        pair = load_pair(by_id[item["id"]], require_original=require_original)
        assert pair.size == (fixtures.SIZE, fixtures.SIZE)
        np.testing.assert_array_equal(pair.mask, item["mask"])
        if "instruction" in item:
            assert pair.instruction == item["instruction"]


# ------------------------------------------------------------------------ CocoGlide


def test_cocoglide_pairs_rows_of_table_csv(tmp_path):
    expected = fixtures.make_cocoglide(tmp_path)
    refs = list(iter_cocoglide(tmp_path))
    assert [r.id for r in _valid(refs)] == [e["id"] for e in expected]
    assert [r.edited for r in _valid(refs)] == [e["edited"] for e in expected]
    _check_decoded(refs, expected)


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
    dev = Path(__file__).resolve().parents[3] / "shared" / "data" / "cocoglide-dev"
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


# ----------------------------------------------------------------------- AutoSplice


def test_autosplice_pairs_forged_images_with_authentic_mask_and_caption(tmp_path):
    expected = fixtures.make_autosplice(tmp_path)
    refs = list(iter_autosplice(tmp_path))
    assert [r.id for r in _valid(refs)] == [e["id"] for e in expected]
    _check_decoded(refs, expected)
    ref = _valid(refs)[0]
    assert ref.original == tmp_path / "Authentic" / "101.jpg"
    assert ref.mask == tmp_path / "Mask" / "101_mask.png"


def test_autosplice_quality_and_instruction_options(tmp_path):
    fixtures.make_autosplice(tmp_path)
    refs = _valid(iter_autosplice(tmp_path, quality=75, instruction="user_term"))
    assert refs[0].id == "autosplice_q75_101_0" and refs[0].instruction == "tram"
    assert refs[0].edited == tmp_path / "Forged_JPEG75" / "101_0.jpg"
    loose = list(iter_autosplice(tmp_path, require_instruction=False))
    assert next(r for r in loose if r.id == "autosplice_q100_103_0").instruction is None


def test_autosplice_names_the_bad_files(tmp_path):
    fixtures.make_autosplice(tmp_path)
    problems = {r.id: r.problem for r in iter_autosplice(tmp_path) if r.problem}
    assert "badname.jpg" in problems["autosplice_q100_badname"]
    assert "103_0.jpg" in problems["autosplice_q100_103_0"]


# ----------------------------------------------------------------------- MagicBrush


def test_magicbrush_reads_split_shards_and_converts_brush_masks(tmp_path):
    expected = fixtures.make_magicbrush(tmp_path)
    refs = list(iter_magicbrush(tmp_path, split="dev"))
    assert [r.id for r in refs] == [e["id"] for e in expected]
    assert all(isinstance(r.original, EncodedImage) for r in refs)
    assert "dev-00000-of-00002-aaaa.parquet row 0 column source_img" == refs[0].original.name
    # first shard: photo painted white; second: RGBA transparent where brushed
    _check_decoded(refs, expected)
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
    assert refs[1].problem == "row 1: column target_img is empty"
    assert refs[1].source == f"{file} row 1"
    assert refs[2].problem == "row 2: instruction is empty"


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


# ------------------------------------------------------------------------ DEAL-300K


def test_deal300k_assumed_layout(tmp_path):
    expected = fixtures.make_deal300k(tmp_path)
    refs = list(iter_deal300k(tmp_path, split="test"))
    assert [r.id for r in _valid(refs)] == [e["id"] for e in expected]
    _check_decoded(refs, expected)
    ref = _valid(refs)[0]
    assert ref.original == tmp_path / "test" / "000000000009.jpg"
    assert ref.mask == tmp_path / "label" / "000000000009_qwen120.png"
    [missing] = [r for r in refs if r.problem]
    assert (
        "000000000024_qwen120.jpg" in missing.problem and "checkpoint-120_test" in missing.problem
    )


def test_deal300k_original_dir_takes_precedence(tmp_path):
    fixtures.make_deal300k(tmp_path)
    coco = tmp_path / "coco"
    coco.mkdir()
    (coco / "000000000009.jpg").write_bytes((tmp_path / "test" / "000000000009.jpg").read_bytes())
    ref = next(iter(iter_deal300k(tmp_path, original_dir=coco)))
    assert ref.original == coco / "000000000009.jpg"


# -------------------------------------------------------------------------- OpenSDI


def test_opensdi_pairs_local_edits_with_their_real_photo(tmp_path):
    expected = fixtures.make_opensdi(tmp_path)
    refs = list(iter_opensdi(tmp_path))
    assert [r.id for r in refs[:3]] == [e["id"] for e in expected]
    assert all(r.instruction is None for r in refs)
    for item in expected:
        ref = next(r for r in refs if r.id == item["id"])
        if item["original"] is None:
            assert ref.original is None
            with pytest.raises(DataError, match="no original image given"):
                load_pair(ref)
            pair = load_pair(ref, require_original=False)
        else:
            pair = load_pair(ref)
            np.testing.assert_array_equal(pair.original, item["original"])
        np.testing.assert_array_equal(pair.mask, item["mask"])
    [bad] = [r for r in refs if r.problem]
    assert bad.problem == "row 4 (fake): column mask is empty"


def test_opensdi_full_synthesis_only_on_request(tmp_path):
    fixtures.make_opensdi(tmp_path)
    assert not any("full" in r.id for r in iter_opensdi(tmp_path))
    full = [r for r in iter_opensdi(tmp_path, include_full=True) if "full" in r.id]
    assert [r.id for r in full] == ["opensdi_full_sd15_fake_000000008"] and full[0].original is None
    assert load_pair(full[0], require_original=False).mask.all()


# ------------------------------------------------------------------------- sniffing


#: The formats of the SIGMA paper's evaluation benchmarks.
BENCHMARKS = ("cocoglide", "autosplice", "magicbrush", "deal300k", "opensdi")


def test_every_benchmark_has_a_reader_and_a_sniffer():
    assert set(fixtures.BUILDERS) == set(BENCHMARKS)
    for name in BENCHMARKS:
        assert DATASET_FORMATS[name].read is not None and DATASET_FORMATS[name].sniff is not None


@pytest.mark.parametrize("name", sorted(fixtures.BUILDERS))
def test_sniffers_pick_exactly_the_right_format(tmp_path, name):
    fixtures.BUILDERS[name](tmp_path)
    assert {k for k in BENCHMARKS if DATASET_FORMATS[k].sniff(tmp_path)} == {name}
    assert detect_format(tmp_path) == name


def test_sniffers_reject_an_empty_folder(tmp_path):
    assert not any(DATASET_FORMATS[k].sniff(tmp_path) for k in BENCHMARKS)
