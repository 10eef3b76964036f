"""The ``webdataset`` format: tar shards, their member naming, and damaged shards."""

from __future__ import annotations

import gzip
import importlib.util
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sigma_iml.data.formats.parquet import looks_like_parquet
from sigma_iml.data.formats.webdataset import (
    WebDatasetKeys,
    iter_webdataset,
    list_webdataset_shards,
    looks_like_webdataset,
)
from sigma_iml.data.pair import load_pair
from sigma_iml.errors import ConfigError, DataError

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "corpus_fixtures", Path(__file__).with_name("corpus_fixtures.py")
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def test_reader_convention_aliases_and_json(tmp_path):
    mask_png = corpus.png(corpus.mask_array(2).astype(np.uint8) * 255)
    shard = corpus.write_tar(
        tmp_path / "s.tar",
        [
            ("a.src.png", corpus.png(corpus.colour(1))),
            ("a.tgt.png", corpus.png(corpus.colour(2))),
            ("a.txt", b"  make it red\n"),
            ("b.original.png", corpus.png(corpus.colour(3))),
            ("b.edited.png", corpus.png(corpus.colour(4))),
            ("b.mask.png", mask_png),
            (
                "b.json",
                json.dumps(
                    {"id": "coco/b.1", "instruction": ["remove cat", "no cat"], "task": "rm"}
                ).encode(),
            ),
            ("b.cls", b"3"),
        ],
    )
    a, b = iter_webdataset(shard)
    assert (a.id, a.instruction, a.problem) == ("a", "make it red", None)
    assert a.edited.name == "s.tar member a.tgt.png"
    assert (b.id, b.instruction) == ("coco/b.1", "remove cat")
    assert b.meta["instruction_variants"] == ["remove cat", "no cat"]
    assert b.meta["task"] == "rm" and b.meta["webdataset_key"] == "b"
    assert b.meta["webdataset_unused_members"] == ["cls"]
    pair_a, pair_b = load_pair(a), load_pair(b)
    np.testing.assert_array_equal(pair_a.original, corpus.colour(1))
    np.testing.assert_array_equal(pair_a.edited, corpus.colour(2))
    np.testing.assert_array_equal(pair_b.mask, corpus.mask_array(2))


def test_custom_keys(tmp_path):
    shard = corpus.write_tar(
        tmp_path / "custom.tar",
        [
            ("k.before.jpg", corpus.png(corpus.colour(1))),
            ("k.after.jpg", corpus.png(corpus.colour(2))),
            ("k.prompt", b"x"),
        ],
    )
    keys = WebDatasetKeys(original=("before",), edited="after", instruction=("prompt",))
    (ref,) = iter_webdataset(shard, keys=keys)
    assert ref.problem is None and ref.instruction == "x"
    np.testing.assert_array_equal(load_pair(ref).edited, corpus.colour(2))
    (default_ref,) = iter_webdataset(shard)
    assert "no edited image" in default_ref.problem
    with pytest.raises(ConfigError, match="both"):
        WebDatasetKeys(original=("img",), edited=("img",))


def test_malformed_samples_are_invalid_refs_naming_shard_key_and_member(tmp_path):
    shard = corpus.write_tar(
        tmp_path / "bad.tar",
        [
            ("noedit.original.png", corpus.png(corpus.colour(1))),
            ("twice.src.jpg", corpus.png(corpus.colour(1))),
            ("twice.original.png", corpus.png(corpus.colour(1))),
            ("twice.edited.png", corpus.png(corpus.colour(2))),
            ("badjson.edited.png", corpus.png(corpus.colour(2))),
            ("badjson.json", b"{not json"),
            ("empty.edited.png", b""),
            ("fine.edited.png", corpus.png(corpus.colour(2))),
        ],
    )
    refs = {r.id: r for r in iter_webdataset(shard)}
    assert list(refs) == ["noedit", "twice", "badjson", "empty", "fine"]
    assert refs["noedit"].problem == (
        "no edited image (expected a member such as "
        "noedit.edited.png, noedit.tgt.png, noedit.target.png)"
    )
    assert (
        "2 original members (twice.src.jpg, twice.original.png); expected one"
        in refs["twice"].problem
    )
    assert "member 'badjson.json' is not UTF-8 JSON" in refs["badjson"].problem
    assert "member 'empty.edited.png' is empty" in refs["empty"].problem
    assert refs["fine"].problem is None and refs["fine"].original is None
    with pytest.raises(DataError, match="no edited image") as caught:
        load_pair(refs["noedit"])
    assert caught.value.source == f"{shard} sample 'noedit'"
    assert str(caught.value).count("sample 'noedit'") == 1  # named once, by the source


def five_sample_shard(path: Path) -> Path:
    members = []
    for i in range(5):
        members += [
            (f"s{i}.original.png", corpus.png(corpus.colour(i))),
            (f"s{i}.edited.png", corpus.png(corpus.colour(i + 100))),
        ]
    return corpus.write_tar(path, members)


def header_offsets(shard: Path) -> dict[str, int]:
    with tarfile.open(shard) as archive:
        return {m.name: m.offset for m in archive.getmembers()}


@pytest.mark.parametrize("cut", ["inside a member", "at a member boundary", "inside a header"])
def test_truncated_shard_yields_complete_samples_then_names_the_shard(tmp_path, cut):
    shard = five_sample_shard(tmp_path / "whole.tar")
    offsets = header_offsets(shard)
    end = {
        "inside a member": offsets["s3.edited.png"] + 512 + 20,
        "at a member boundary": offsets["s3.edited.png"],
        "inside a header": offsets["s3.edited.png"] + 100,
    }[cut]
    truncated = tmp_path / "cut.tar"
    truncated.write_bytes(shard.read_bytes()[:end])
    refs = iter_webdataset(truncated)
    got = [next(refs).id for _ in range(3)]
    assert got == ["s0", "s1", "s2"]
    with pytest.raises(DataError, match="truncated or corrupt") as caught:
        next(refs)
    assert caught.value.source == str(truncated)
    assert "after 3 complete samples" in str(caught.value) and "'s3'" in str(caught.value)


def test_truncated_gzip_shard_and_empty_file(tmp_path):
    shard = five_sample_shard(tmp_path / "whole.tar")
    compressed = gzip.compress(shard.read_bytes())
    gz = tmp_path / "cut.tar.gz"
    gz.write_bytes(compressed[: len(compressed) * 2 // 3])
    with pytest.raises(DataError, match="truncated or corrupt"):
        list(iter_webdataset(gz))
    whole_gz = tmp_path / "whole.tgz"
    whole_gz.write_bytes(compressed)
    assert [r.id for r in iter_webdataset(whole_gz)] == ["s0", "s1", "s2", "s3", "s4"]
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="truncated or corrupt"):
        list(iter_webdataset(empty))


def test_shard_reading_keeps_no_member_list(tmp_path, monkeypatch):
    """Stream-mode tarfile remembers every member header; a big shard must not pile up."""
    shard = five_sample_shard(tmp_path / "whole.tar")
    opened: list[tarfile.TarFile] = []
    real_open = tarfile.open

    def remembering_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(tarfile, "open", remembering_open)
    assert len(list(iter_webdataset(shard))) == 5
    assert len(opened[0].members) <= 1


def test_folder_brace_and_glob_shard_lists(tmp_path):
    for i in (2, 0, 1):
        corpus.write_tar(
            tmp_path / "shards" / f"train-{i:06d}.tar",
            [(f"k{i}.edited.png", corpus.png(corpus.colour(i)))],
        )
    corpus.write_tar(
        tmp_path / "shards" / ".train-000003.tar.tmp-1",
        [("x.edited.png", corpus.png(corpus.colour(1)))],
    )
    folder = tmp_path / "shards"
    assert [r.id for r in iter_webdataset(folder)] == ["k0", "k1", "k2"]
    assert [r.id for r in iter_webdataset(f"{folder}/train-{{000002..000000}}.tar")] == [
        "k2",
        "k1",
        "k0",
    ]
    assert [r.id for r in iter_webdataset(f"{folder}/train-00000[01].tar")] == ["k0", "k1"]
    with pytest.raises(DataError, match="not found"):
        list_webdataset_shards(f"{folder}/train-{{000000..000003}}.tar")
    assert looks_like_webdataset(folder) and looks_like_webdataset(folder / "train-000000.tar")
    assert looks_like_webdataset(f"{folder}/train-{{000000..000001}}.tar")
    not_tar = tmp_path / "fake.tar"
    not_tar.write_bytes(corpus.png(corpus.colour(1)))
    assert not looks_like_webdataset(not_tar)
    assert not looks_like_webdataset(tmp_path / "nothing")
    assert not looks_like_parquet(folder)
