"""The ``parquet`` format: corpora in the Hugging Face parquet layout, read by column presets."""

from __future__ import annotations

import importlib.util
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sigma_iml.data.formats.parquet import (
    MAGICBRUSH_WITH_BRUSH_MASK,
    PARQUET_PRESETS,
    ColumnMap,
    iter_parquet,
    looks_like_parquet,
)
from sigma_iml.data.images import EncodedImage
from sigma_iml.data.pair import load_pair
from sigma_iml.errors import ConfigError, DataError, ManifestError

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "corpus_fixtures", Path(__file__).with_name("corpus_fixtures.py")
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def test_magicbrush_struct_layout_reads_ids_instructions_and_decodes(tmp_path):
    file = corpus.magicbrush_file(tmp_path / "train-00000-of-00001.parquet")
    assert all(r.mask is None for r in iter_parquet(file))  # the preset leaves mask_img out
    refs = list(iter_parquet(file, columns=MAGICBRUSH_WITH_BRUSH_MASK))
    assert [r.id for r in refs] == ["1000-1", "1001-2", "1002-1"]
    assert [r.instruction for r in refs] == ["make it 0", "make it 1", "make it 2"]
    assert all(r.problem is None for r in refs)
    assert refs[1].original == EncodedImage(
        corpus.png(corpus.colour(10)), name=f"{file.name} row 1 column source_img"
    )
    assert refs[1].source == f"{file} row 1"
    for i, ref in enumerate(refs):
        pair = load_pair(ref)
        np.testing.assert_array_equal(pair.original, corpus.colour(10 * i))
        np.testing.assert_array_equal(pair.edited, corpus.colour(10 * i + 5))
        np.testing.assert_array_equal(pair.mask, corpus.mask_array(i))


def test_raw_binary_layout_with_a_column_map_ids_by_file_stem_and_row(tmp_path):
    file = corpus.write_parquet(
        tmp_path / "pairs.parquet",
        {
            "before": pa.array(
                [corpus.png(corpus.colour(1)), corpus.png(corpus.colour(2))], pa.binary()
            ),
            "after": pa.array(
                [corpus.png(corpus.colour(3)), corpus.png(corpus.colour(4))], pa.large_binary()
            ),
            "prompt": pa.array(["a", "b"]),
        },
    )
    columns = ColumnMap(original="before", edited="after", instruction="prompt")
    refs = list(iter_parquet(file, columns=columns))
    assert [r.id for r in refs] == ["pairs-0", "pairs-1"]
    assert refs[1].edited.name == "pairs.parquet row 1 column after"
    pair = load_pair(refs[1])
    np.testing.assert_array_equal(pair.original, corpus.colour(2))
    np.testing.assert_array_equal(pair.edited, corpus.colour(4))
    assert pair.mask is None


@pytest.mark.parametrize("name", sorted(PARQUET_PRESETS))
def test_each_preset_selects_its_corpus_columns(tmp_path, name):
    assert set(corpus.EXPECTED_PRESET_IDS) == set(PARQUET_PRESETS)
    file = corpus.write_parquet(tmp_path / "corpus.parquet", corpus.preset_table(name))
    (ref,) = iter_parquet(file, columns=name.upper())  # preset names are case-insensitive
    assert ref.problem is None
    assert ref.id == corpus.EXPECTED_PRESET_IDS[name]
    assert ref.instruction == "add a hat"
    pair = load_pair(ref)
    np.testing.assert_array_equal(pair.original, corpus.colour(20))
    np.testing.assert_array_equal(pair.edited, corpus.colour(200))
    assert pair.mask is None  # no preset attaches a mask (see the magicbrush preset)
    if name == "omniedit":
        assert ref.meta["instruction_variants"] == ["add a hat", "put a hat on him"]
        assert ref.meta["task"] == "addition" and ref.meta["o_score"] == 8.5
    if name == "anyedit":
        assert ref.meta["image_id"] == "coco_7" and ref.meta["edit_type"] == "add"
    if name == "crispedit":
        assert ref.meta["type"] == "add"


def test_unknown_preset_is_a_config_error(tmp_path):
    file = corpus.magicbrush_file(tmp_path / "a.parquet")
    with pytest.raises(ConfigError, match="magicbrush"):
        iter_parquet(file, columns="instructpix2pix")
    with pytest.raises(DataError, match="no such file"):
        iter_parquet(tmp_path / "missing.parquet")


def test_malformed_rows_become_invalid_refs_naming_file_row_and_column(tmp_path):
    good, edited = corpus.png(corpus.colour(1)), corpus.png(corpus.colour(2))
    file = corpus.write_parquet(
        tmp_path / "broken.parquet",
        {
            "source_img": pa.array(
                [
                    corpus.hf_image(good),
                    None,
                    corpus.hf_image(None, "images/x.jpg"),
                    corpus.hf_image(b""),
                    corpus.hf_image(good),
                ],
                corpus.IMAGE_STRUCT,
            ),
            "target_img": pa.array([corpus.hf_image(edited)] * 5, corpus.IMAGE_STRUCT),
            "instruction": pa.array(["ok", "null image", "path only", "empty bytes", "ok again"]),
        },
    )
    refs = list(iter_parquet(file))
    assert [r.problem is None for r in refs] == [True, False, True, False, True]
    assert refs[1].id == "broken-1"
    assert refs[1].problem == "column 'source_img' is null (no image)"
    assert refs[2].problem is None and refs[2].original == tmp_path / "images" / "x.jpg"
    assert refs[3].problem == "column 'source_img' holds zero bytes"
    with pytest.raises(DataError, match="row 1: column 'source_img' is null") as caught:
        load_pair(refs[1])
    assert caught.value.item == "broken-1" and caught.value.source == f"{file} row 1"
    assert str(caught.value).count("row 1") == 1  # the row is named once, not "row 1: row 1:"
    with pytest.raises(DataError, match="image file not found; put the file at this path"):
        load_pair(refs[2])  # a path-only cell names a file beside the parquet file
    load_pair(refs[4])  # rows after a bad one still read


def test_wrongly_typed_cells_are_invalid_rows(tmp_path):
    file = corpus.write_parquet(
        tmp_path / "typed.parquet",
        {
            "source_img": pa.array(["not bytes"]),
            "target_img": pa.array([corpus.png(corpus.colour(2))], pa.binary()),
            "instruction": pa.array([7]),
        },
    )
    (ref,) = iter_parquet(file)
    assert ref.problem == (
        "column 'source_img' holds str, expected image bytes or a {bytes, path} struct; "
        "column 'instruction' holds int, expected text or a list of texts"
    )


def test_missing_column_is_an_error_for_the_file_after_earlier_files(tmp_path):
    corpus.magicbrush_file(tmp_path / "data" / "train-00000-of-00002.parquet", n=2)
    corpus.write_parquet(
        tmp_path / "data" / "train-00001-of-00002.parquet",
        {
            "source_img": pa.array(
                [corpus.hf_image(corpus.png(corpus.colour(1)))], corpus.IMAGE_STRUCT
            ),
            "instruction": pa.array(["x"]),
        },
    )
    refs = iter_parquet(tmp_path / "data")
    assert [next(refs).id, next(refs).id] == ["1000-1", "1001-2"]
    with pytest.raises(ManifestError) as caught:
        next(refs)
    message = str(caught.value)
    assert "train-00001-of-00002.parquet has no column 'target_img' (edited)" in message
    assert "its columns are instruction, source_img" in message


def test_missing_optional_columns_are_fine(tmp_path):
    file = corpus.write_parquet(
        tmp_path / "nomask.parquet",
        {
            "source_img": pa.array(
                [corpus.hf_image(corpus.png(corpus.colour(1)))], corpus.IMAGE_STRUCT
            ),
            "target_img": pa.array(
                [corpus.hf_image(corpus.png(corpus.colour(2)))], corpus.IMAGE_STRUCT
            ),
            "instruction": pa.array(["x"]),
            "mask_img": pa.array(
                [corpus.hf_image(None)], corpus.IMAGE_STRUCT
            ),  # a row without a mask
        },
    )
    columns = ColumnMap(
        original="source_img", edited="target_img", mask="mask_img", id_columns="img_id"
    )
    (ref,) = iter_parquet(file, columns=columns)
    assert ref.problem is None and ref.mask is None and ref.id == "nomask-0"


def test_folder_and_glob_read_files_in_sorted_order(tmp_path):
    data = tmp_path / "snapshot" / "data"
    corpus.magicbrush_file(data / "train-00001-of-00002.parquet", start=10, n=1)
    corpus.magicbrush_file(data / "train-00000-of-00002.parquet", start=0, n=2)
    corpus.magicbrush_file(data / "validation-00000-of-00001.parquet", start=50, n=1)
    corpus.magicbrush_file(tmp_path / "snapshot" / ".cache" / "stale.parquet", start=90, n=1)
    assert [r.id for r in iter_parquet(tmp_path / "snapshot")] == [
        "1000-1",
        "1001-2",
        "1010-1",
        "1050-1",
    ]
    assert [r.id for r in iter_parquet(f"{data}/train-*.parquet")] == ["1000-1", "1001-2", "1010-1"]
    with pytest.raises(DataError, match="no file matches"):
        iter_parquet(f"{data}/test-*.parquet")


def test_looks_like_parquet(tmp_path):
    file = corpus.magicbrush_file(tmp_path / "d" / "x.parquet", n=1)
    (tmp_path / "img.png").write_bytes(corpus.png(corpus.colour(1)))
    (tmp_path / "empty").mkdir()
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    assert (
        looks_like_parquet(file)
        and looks_like_parquet(tmp_path / "d")
        and looks_like_parquet(f"{tmp_path}/d/*.parquet")
    )
    assert not looks_like_parquet(tmp_path / "img.png")
    assert not looks_like_parquet(tmp_path / "empty")
    assert not looks_like_parquet(fake)
    assert not looks_like_parquet(tmp_path / "missing")


def test_islice_reads_one_small_batch_of_only_the_mapped_columns(tmp_path, monkeypatch):
    rows = 200
    image = corpus.hf_image(corpus.png(corpus.colour(1)))
    file = corpus.write_parquet(
        tmp_path / "big.parquet",
        {
            "source_img": pa.array([image] * rows, corpus.IMAGE_STRUCT),
            "target_img": pa.array([image] * rows, corpus.IMAGE_STRUCT),
            "instruction": pa.array(["x"] * rows),
            "huge_unused": pa.array([b"\0" * 50_000] * rows, pa.binary()),
        },
        row_group_size=20,
    )
    requested_columns: list[list[str]] = []
    rows_read: list[int] = []

    class CountingParquetFile(pq.ParquetFile):
        def iter_batches(self, *args, **kwargs):
            requested_columns.append(list(kwargs["columns"]))
            for batch in super().iter_batches(*args, **kwargs):
                rows_read.append(batch.num_rows)
                yield batch

    monkeypatch.setattr(pq, "ParquetFile", CountingParquetFile)
    first = list(islice(iter_parquet(file, batch_size=4), 3))
    assert [r.id for r in first] == ["big-0", "big-1", "big-2"]
    assert rows_read == [4]  # one batch of 4 rows out of 200
    assert requested_columns == [["source_img", "target_img", "instruction"]]


def test_corrupt_parquet_file_is_a_data_error(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not really parquet PAR1")
    with pytest.raises(DataError, match="not a readable Parquet file") as caught:
        list(iter_parquet(bad))
    assert caught.value.source == str(bad)
