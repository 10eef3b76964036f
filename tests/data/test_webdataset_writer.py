"""The WebDataset writer: shards the ``webdataset`` format reads back, written atomically."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sigma_iml.data.formats.parquet import MAGICBRUSH_WITH_BRUSH_MASK, iter_parquet
from sigma_iml.data.formats.webdataset import iter_webdataset
from sigma_iml.data.images import EncodedImage
from sigma_iml.data.pair import PairRef, load_pair
from sigma_iml.data.webdataset_writer import write_webdataset_shards
from sigma_iml.errors import DataError

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "corpus_fixtures", Path(__file__).parent / "formats" / "corpus_fixtures.py"
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def sample_refs() -> list[PairRef]:
    return [
        PairRef(
            id="coco/img.7 turn 1",  # dots and slashes cannot be member keys
            original=corpus.colour(1),
            edited=EncodedImage(corpus.png(corpus.colour(2)), "edited bytes"),
            instruction="make the sky red",
            mask=corpus.mask_array(3),
            meta={"score": np.float32(0.5), "task": "recolour"},
        ),
        PairRef(
            id="b",
            original=corpus.png(corpus.colour(3)),
            edited=Image.fromarray(corpus.colour(4)),
            negative=True,
        ),
        PairRef(
            id="c",
            original=None,
            edited=corpus.colour(5),
            instruction="crop",
            mask=corpus.mask_array(0) * 1.0,
        ),
        PairRef(
            id="c", original=corpus.colour(6), edited=corpus.colour(7)
        ),  # duplicate id: keys must stay unique
        PairRef(
            id="e",
            original=corpus.colour(8),
            edited=corpus.colour(9),
            meta={"webdataset_shard": "old.tar"},
        ),
    ]


def test_writer_reader_round_trip(tmp_path):
    out = tmp_path / "out"
    shards = write_webdataset_shards(sample_refs(), out, max_per_shard=2)
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert sorted(p.name for p in out.iterdir()) == [
        s.name for s in shards
    ]  # no temporary files left
    refs = list(iter_webdataset(out))
    assert [r.id for r in refs] == ["coco/img.7 turn 1", "b", "c", "c", "e"]
    assert all(r.problem is None for r in refs)
    first, negative, no_original, duplicate, last = refs
    assert first.instruction == "make the sky red"
    assert first.meta["score"] == 0.5 and first.meta["task"] == "recolour"
    assert first.meta["webdataset_key"] == "coco_img_7_turn_1"
    assert duplicate.meta["webdataset_key"] == "c_1"
    assert last.meta["webdataset_shard"] == str(shards[2])  # stale provenance was not written
    assert negative.negative and negative.mask is None
    assert no_original.original is None
    for written, read in zip(sample_refs(), refs, strict=True):
        pair = load_pair(read, require_original=written.original is not None)
        expected = load_pair(written, require_original=written.original is not None)
        np.testing.assert_array_equal(pair.edited, expected.edited)
        np.testing.assert_array_equal(pair.original, expected.original)
        if expected.mask is not None:
            np.testing.assert_array_equal(pair.mask, expected.mask)
    # The encoded edited image went in byte for byte.
    assert first.edited.data == corpus.png(corpus.colour(2))
    # Writing what was read gives the same shard bytes: nothing is lost or invented.
    again = write_webdataset_shards(refs, tmp_path / "again", max_per_shard=2)
    assert [s.read_bytes() for s in again] == [s.read_bytes() for s in shards]


def test_writer_output_reads_with_the_webdataset_package(tmp_path):
    webdataset = pytest.importorskip("webdataset")
    (shard,) = write_webdataset_shards(sample_refs()[:2], tmp_path)
    samples = list(webdataset.WebDataset(str(shard), shardshuffle=False))
    assert [s["__key__"] for s in samples] == ["coco_img_7_turn_1", "b"]
    assert set(samples[0]) >= {"edited.png", "mask.png", "original.png", "txt", "json"}
    assert json.loads(samples[0]["json"])["id"] == "coco/img.7 turn 1"


def test_parquet_to_webdataset_round_trip(tmp_path):
    corpus.magicbrush_file(tmp_path / "mb.parquet", n=3)
    refs = iter_parquet(tmp_path / "mb.parquet", columns=MAGICBRUSH_WITH_BRUSH_MASK)
    shards = write_webdataset_shards(refs, tmp_path / "wds")
    refs = list(iter_webdataset(shards[0]))
    assert [(r.id, r.instruction) for r in refs] == [
        ("1000-1", "make it 0"),
        ("1001-2", "make it 1"),
        ("1002-1", "make it 2"),
    ]
    assert refs[2].meta["parquet_row"] == 2
    np.testing.assert_array_equal(load_pair(refs[2]).mask, corpus.mask_array(2))


def test_writer_failure_keeps_completed_shards_and_leaves_no_partial_one(tmp_path):
    out = tmp_path / "out"
    refs = sample_refs()[:3] + [PairRef.invalid("broken", "row 9: image is null")]
    with pytest.raises(DataError, match="cannot write an invalid item: row 9"):
        write_webdataset_shards(refs, out, max_per_shard=2)
    assert sorted(p.name for p in out.iterdir()) == ["shard-000000.tar"]
    assert [r.id for r in iter_webdataset(out)] == ["coco/img.7 turn 1", "b"]


def test_writer_refuses_existing_shards_unless_overwrite(tmp_path):
    write_webdataset_shards(sample_refs(), tmp_path, max_per_shard=1)
    with pytest.raises(DataError, match="5 shards named shard-\\*.tar already exist"):
        write_webdataset_shards(sample_refs()[:1], tmp_path)
    shards = write_webdataset_shards(sample_refs()[:2], tmp_path, overwrite=True)
    assert (
        sorted(p.name for p in tmp_path.iterdir())
        == ["shard-000000.tar"]
        == [s.name for s in shards]
    )
    assert [r.id for r in iter_webdataset(tmp_path)] == ["coco/img.7 turn 1", "b"]


def test_failed_overwrite_leaves_no_old_shards_behind(tmp_path):
    write_webdataset_shards(sample_refs(), tmp_path, max_per_shard=1)
    failing = [*sample_refs()[2:4], PairRef.invalid("broken", "bad row")]
    with pytest.raises(DataError, match="bad row"):
        write_webdataset_shards(failing, tmp_path, max_per_shard=1, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar", "shard-000001.tar"]
    assert [r.id for r in iter_webdataset(tmp_path)] == ["c", "c"]


def test_writer_rejects_unknown_image_bytes(tmp_path):
    with pytest.raises(DataError, match="edited image is not PNG"):
        write_webdataset_shards([PairRef(id="x", original=None, edited=b"GIF? no")], tmp_path)
    assert list(tmp_path.iterdir()) == []
