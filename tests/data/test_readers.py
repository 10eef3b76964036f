"""Opening datasets: format detection in DETECTION_ORDER, the registry, open_dataset."""

from __future__ import annotations

import importlib.util
from itertools import islice
from pathlib import Path

import pytest

from sigma_iml.data.formats import DATASET_FORMATS, DETECTION_ORDER, DatasetFormat
from sigma_iml.data.formats.parquet import iter_parquet
from sigma_iml.data.readers import detect_format, open_dataset
from sigma_iml.data.webdataset_writer import write_webdataset_shards
from sigma_iml.errors import ConfigError, ManifestError

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "corpus_fixtures", Path(__file__).parent / "formats" / "corpus_fixtures.py"
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "benchmark_fixtures", Path(__file__).parent / "formats" / "benchmark_fixtures.py"
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def test_format_detection(tmp_path, make_dataset):
    manifest = make_dataset(n=1)
    assert detect_format(manifest) == "manifest"
    assert detect_format(manifest.parent) == "manifest"
    (manifest.parent / "manifest.jsonl").rename(manifest.parent / "listing.jsonl")
    assert detect_format(manifest.parent) == "folder"
    json_path = tmp_path / "list.json"
    json_path.write_text("[]")
    assert detect_format(json_path) == "imdlbenco"
    with pytest.raises(ManifestError, match="does not exist"):
        detect_format(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="cannot tell the dataset format"):
        detect_format(empty)
    assert [r.id for r in islice(open_dataset(manifest.parent, format="folder"), 1)] == ["pair000"]


def test_formats_are_registered_with_open_dataset(tmp_path):
    magicbrush = corpus.magicbrush_file(tmp_path / "mb.parquet", n=2)
    omniedit = corpus.write_parquet(tmp_path / "omni.parquet", corpus.preset_table("omniedit"))
    (shard,) = write_webdataset_shards(iter_parquet(magicbrush), tmp_path / "wds")
    # The specific MagicBrush benchmark reader wins over the generic Parquet reader.
    assert detect_format(magicbrush) == "magicbrush"
    assert detect_format(omniedit) == "parquet"
    assert detect_format(shard.parent) == "webdataset"
    via_registry = open_dataset(magicbrush, format="parquet", columns="magicbrush")
    assert [r.id for r in via_registry] == ["1000-1", "1001-2"]
    assert [r.id for r in open_dataset(shard)] == ["1000-1", "1001-2"]
    (omni,) = open_dataset(omniedit, columns="omniedit")
    assert omni.id == "task_obj_add_17"


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


def test_every_format_has_a_place_in_the_detection_order():
    assert len(DETECTION_ORDER) == len(set(DETECTION_ORDER))
    assert set(DETECTION_ORDER) == set(DATASET_FORMATS)


def test_detection_follows_the_order_not_the_registration(tmp_path):
    """Registering the formats in the reverse order changes nothing: MagicBrush parquet is
    still MagicBrush, not generic parquet, and a folder with a manifest is a manifest."""
    magicbrush = corpus.magicbrush_file(tmp_path / "mb" / "mb.parquet", n=1)
    manifest_folder = tmp_path / "mp"
    (manifest_folder / "original").mkdir(parents=True)
    (manifest_folder / "edited").mkdir()
    (manifest_folder / "manifest.jsonl").write_text("")
    reversed_formats = dict(reversed(list(DATASET_FORMATS.items())))
    catch_all = DatasetFormat("catch-all", lambda path: iter(()), lambda path: True, "anything")
    saved = dict(DATASET_FORMATS)
    try:
        DATASET_FORMATS.clear()
        DATASET_FORMATS["catch-all"] = catch_all  # registered first, asked last
        DATASET_FORMATS.update(reversed_formats)
        assert detect_format(magicbrush.parent) == "magicbrush"
        assert detect_format(manifest_folder) == "manifest"
        empty = tmp_path / "empty"
        empty.mkdir()
        assert detect_format(empty) == "catch-all"
        with pytest.raises(ConfigError, match="known: " + ", ".join(DETECTION_ORDER)):
            open_dataset(empty, format="nope")
    finally:
        DATASET_FORMATS.clear()
        DATASET_FORMATS.update(saved)
