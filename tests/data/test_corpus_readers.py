"""Corpus readers: Parquet (Hugging Face layout) and WebDataset shards, and the writer."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sigma_iml.data import readers
from sigma_iml.data.formats.parquet import (
    MAGICBRUSH_WITH_BRUSH_MASK,
    PARQUET_PRESETS,
    ColumnMap,
    iter_parquet,
    looks_like_parquet,
)
from sigma_iml.data.formats.webdataset import (
    WebDatasetKeys,
    iter_webdataset,
    list_webdataset_shards,
    looks_like_webdataset,
)
from sigma_iml.data.images import EncodedImage
from sigma_iml.data.pair import PairRef, load_pair
from sigma_iml.data.webdataset_writer import write_webdataset_shards
from sigma_iml.errors import ConfigError, DataError, ManifestError

SIZE = 16
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def colour(value: int) -> np.ndarray:
    """A 16x16 RGB image whose three channels tell images apart after a round trip."""
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    value %= 256
    image[..., 0] = value
    image[..., 1] = 255 - value
    image[4:8, 4:8, 2] = 200
    return image


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_array(row: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[row : row + 3, 2:9] = True
    return mask


def hf_image(data: bytes | None, path: str | None = "") -> dict:
    return {"bytes": data, "path": path}


def write_parquet(
    path: Path, columns: dict[str, pa.Array], row_group_size: int | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def magicbrush_file(path: Path, start: int = 0, n: int = 3) -> Path:
    """MagicBrush's schema with images in Hugging Face's ``{bytes, path}`` struct."""
    rows = range(start, start + n)
    return write_parquet(
        path,
        {
            "img_id": pa.array([str(1000 + i) for i in rows]),
            "turn_index": pa.array([1 + i % 2 for i in rows], pa.int32()),
            "source_img": pa.array([hf_image(png(colour(10 * i))) for i in rows], IMAGE_STRUCT),
            "mask_img": pa.array(
                [hf_image(png(mask_array(i).astype(np.uint8) * 255)) for i in rows], IMAGE_STRUCT
            ),
            "instruction": pa.array([f"make it {i}" for i in rows]),
            "target_img": pa.array([hf_image(png(colour(10 * i + 5))) for i in rows], IMAGE_STRUCT),
        },
    )


# --------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------


def test_magicbrush_struct_layout_reads_ids_instructions_and_decodes(tmp_path):
    file = magicbrush_file(tmp_path / "train-00000-of-00001.parquet")
    assert all(r.mask is None for r in iter_parquet(file))  # the preset leaves mask_img out
    refs = list(iter_parquet(file, columns=MAGICBRUSH_WITH_BRUSH_MASK))
    assert [r.id for r in refs] == ["1000-1", "1001-2", "1002-1"]
    assert [r.instruction for r in refs] == ["make it 0", "make it 1", "make it 2"]
    assert all(r.problem is None for r in refs)
    assert refs[1].original == EncodedImage(
        png(colour(10)), name=f"{file.name} row 1 column source_img"
    )
    assert refs[1].source == f"{file} row 1"
    for i, ref in enumerate(refs):
        pair = load_pair(ref)
        np.testing.assert_array_equal(pair.original, colour(10 * i))
        np.testing.assert_array_equal(pair.edited, colour(10 * i + 5))
        np.testing.assert_array_equal(pair.mask, mask_array(i))


def test_raw_binary_layout_with_a_column_map_ids_by_file_stem_and_row(tmp_path):
    file = write_parquet(
        tmp_path / "pairs.parquet",
        {
            "before": pa.array([png(colour(1)), png(colour(2))], pa.binary()),
            "after": pa.array([png(colour(3)), png(colour(4))], pa.large_binary()),
            "prompt": pa.array(["a", "b"]),
        },
    )
    columns = ColumnMap(original="before", edited="after", instruction="prompt")
    refs = list(iter_parquet(file, columns=columns))
    assert [r.id for r in refs] == ["pairs-0", "pairs-1"]
    assert refs[1].edited.name == "pairs.parquet row 1 column after"
    pair = load_pair(refs[1])
    np.testing.assert_array_equal(pair.original, colour(2))
    np.testing.assert_array_equal(pair.edited, colour(4))
    assert pair.mask is None


def preset_table(name: str) -> dict[str, pa.Array]:
    """One row in each corpus' documented schema, with decoy image columns holding an
    image the preset must not pick (AnyEdit's visual_input, a mask where none is mapped)."""
    original, edited, decoy = png(colour(20)), png(colour(200)), png(colour(120))
    image = lambda data: pa.array([hf_image(data)], IMAGE_STRUCT)  # noqa: E731
    text = lambda value: pa.array([value])  # noqa: E731
    if name == "magicbrush":
        return {
            "img_id": text("42"),
            "turn_index": pa.array([3], pa.int32()),
            "source_img": image(original),
            "mask_img": image(png(mask_array(0).astype(np.uint8) * 255)),
            "instruction": text("add a hat"),
            "target_img": image(edited),
        }
    if name == "anyedit":
        return {
            "image_id": text("coco_7"),
            "edit_instruction": text("add a hat"),
            "edit_type": text("add"),
            "image_file": image(original),
            "edited_file": image(edited),
            "visual_input": image(decoy),
            "input": text("a man"),
            "output": text("a man with a hat"),
        }
    if name == "omniedit":
        return {
            "omni_edit_id": text("task_obj_add_17"),
            "task": text("addition"),
            "src_img": image(original),
            "edited_img": image(edited),
            "edited_prompt_list": pa.array(
                [["add a hat", "put a hat on him"]], pa.list_(pa.string())
            ),
            "width": pa.array([SIZE]),
            "height": pa.array([SIZE]),
            "sc_score_1": pa.array([9]),
            "sc_score_2": pa.array([8]),
            "pq_score": pa.array([9]),
            "o_score": pa.array([8.5]),
        }
    if name == "crispedit":
        return {
            "input_img": image(original),
            "output_img": image(edited),
            "instruction": text("add a hat"),
            "type": text("add"),
        }
    if name == "promptfix":
        return {
            "input_img": image(original),
            "processed_img": image(edited),
            "instruction": text("add a hat"),
            "auxiliary_prompt": text("a photo of a man"),
            "task_id": text("object_addition"),
        }
    raise AssertionError(name)


EXPECTED_PRESET_IDS = {
    "magicbrush": "42-3",
    "anyedit": "corpus-0",
    "omniedit": "task_obj_add_17",
    "crispedit": "corpus-0",
    "promptfix": "corpus-0",
}


@pytest.mark.parametrize("name", sorted(PARQUET_PRESETS))
def test_each_preset_selects_its_corpus_columns(tmp_path, name):
    assert set(EXPECTED_PRESET_IDS) == set(PARQUET_PRESETS)
    file = write_parquet(tmp_path / "corpus.parquet", preset_table(name))
    (ref,) = iter_parquet(file, columns=name.upper())  # preset names are case-insensitive
    assert ref.problem is None
    assert ref.id == EXPECTED_PRESET_IDS[name]
    assert ref.instruction == "add a hat"
    pair = load_pair(ref)
    np.testing.assert_array_equal(pair.original, colour(20))
    np.testing.assert_array_equal(pair.edited, colour(200))
    assert pair.mask is None  # no preset attaches a mask (see the magicbrush preset)
    if name == "omniedit":
        assert ref.meta["instruction_variants"] == ["add a hat", "put a hat on him"]
        assert ref.meta["task"] == "addition" and ref.meta["o_score"] == 8.5
    if name == "anyedit":
        assert ref.meta["image_id"] == "coco_7" and ref.meta["edit_type"] == "add"
    if name == "crispedit":
        assert ref.meta["type"] == "add"


def test_unknown_preset_is_a_config_error(tmp_path):
    file = magicbrush_file(tmp_path / "a.parquet")
    with pytest.raises(ConfigError, match="magicbrush"):
        iter_parquet(file, columns="instructpix2pix")
    with pytest.raises(DataError, match="no such file"):
        iter_parquet(tmp_path / "missing.parquet")


def test_malformed_rows_become_invalid_refs_naming_file_row_and_column(tmp_path):
    good, edited = png(colour(1)), png(colour(2))
    file = write_parquet(
        tmp_path / "broken.parquet",
        {
            "source_img": pa.array(
                [
                    hf_image(good),
                    None,
                    hf_image(None, "images/x.jpg"),
                    hf_image(b""),
                    hf_image(good),
                ],
                IMAGE_STRUCT,
            ),
            "target_img": pa.array([hf_image(edited)] * 5, IMAGE_STRUCT),
            "instruction": pa.array(["ok", "null image", "path only", "empty bytes", "ok again"]),
        },
    )
    refs = list(iter_parquet(file))
    assert [r.problem is None for r in refs] == [True, False, False, False, True]
    assert refs[1].id == "broken-1"
    assert refs[1].problem == "broken.parquet row 1: column 'source_img' is null (no image)"
    assert (
        "row 2: column 'source_img' has no image bytes (only a file reference 'images/x.jpg'"
        in refs[2].problem
    )
    assert refs[3].problem == "broken.parquet row 3: column 'source_img' holds zero bytes"
    with pytest.raises(DataError, match="row 1: column 'source_img' is null") as caught:
        load_pair(refs[1])
    assert caught.value.item == "broken-1" and caught.value.source == f"{file} row 1"
    load_pair(refs[4])  # rows after a bad one still read


def test_wrongly_typed_cells_are_invalid_rows(tmp_path):
    file = write_parquet(
        tmp_path / "typed.parquet",
        {
            "source_img": pa.array(["not bytes"]),
            "target_img": pa.array([png(colour(2))], pa.binary()),
            "instruction": pa.array([7]),
        },
    )
    (ref,) = iter_parquet(file)
    assert ref.problem == (
        "typed.parquet row 0: column 'source_img' holds str, expected image bytes or a {bytes, path} struct; "
        "column 'instruction' holds int, expected text or a list of texts"
    )


def test_missing_column_is_an_error_for_the_file_after_earlier_files(tmp_path):
    magicbrush_file(tmp_path / "data" / "train-00000-of-00002.parquet", n=2)
    write_parquet(
        tmp_path / "data" / "train-00001-of-00002.parquet",
        {
            "source_img": pa.array([hf_image(png(colour(1)))], IMAGE_STRUCT),
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
    file = write_parquet(
        tmp_path / "nomask.parquet",
        {
            "source_img": pa.array([hf_image(png(colour(1)))], IMAGE_STRUCT),
            "target_img": pa.array([hf_image(png(colour(2)))], IMAGE_STRUCT),
            "instruction": pa.array(["x"]),
            "mask_img": pa.array([hf_image(None)], IMAGE_STRUCT),  # a row without a mask
        },
    )
    columns = ColumnMap(
        original="source_img", edited="target_img", mask="mask_img", id_columns="img_id"
    )
    (ref,) = iter_parquet(file, columns=columns)
    assert ref.problem is None and ref.mask is None and ref.id == "nomask-0"


def test_folder_and_glob_read_files_in_sorted_order(tmp_path):
    data = tmp_path / "snapshot" / "data"
    magicbrush_file(data / "train-00001-of-00002.parquet", start=10, n=1)
    magicbrush_file(data / "train-00000-of-00002.parquet", start=0, n=2)
    magicbrush_file(data / "validation-00000-of-00001.parquet", start=50, n=1)
    magicbrush_file(tmp_path / "snapshot" / ".cache" / "stale.parquet", start=90, n=1)
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
    file = magicbrush_file(tmp_path / "d" / "x.parquet", n=1)
    (tmp_path / "img.png").write_bytes(png(colour(1)))
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
    image = hf_image(png(colour(1)))
    file = write_parquet(
        tmp_path / "big.parquet",
        {
            "source_img": pa.array([image] * rows, IMAGE_STRUCT),
            "target_img": pa.array([image] * rows, IMAGE_STRUCT),
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


# --------------------------------------------------------------------------------------
# WebDataset
# --------------------------------------------------------------------------------------


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_reader_convention_aliases_and_json(tmp_path):
    mask_png = png(mask_array(2).astype(np.uint8) * 255)
    shard = write_tar(
        tmp_path / "s.tar",
        [
            ("a.src.png", png(colour(1))),
            ("a.tgt.png", png(colour(2))),
            ("a.txt", b"  make it red\n"),
            ("b.original.png", png(colour(3))),
            ("b.edited.png", png(colour(4))),
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
    np.testing.assert_array_equal(pair_a.original, colour(1))
    np.testing.assert_array_equal(pair_a.edited, colour(2))
    np.testing.assert_array_equal(pair_b.mask, mask_array(2))


def test_custom_keys(tmp_path):
    shard = write_tar(
        tmp_path / "custom.tar",
        [("k.before.jpg", png(colour(1))), ("k.after.jpg", png(colour(2))), ("k.prompt", b"x")],
    )
    keys = WebDatasetKeys(original=("before",), edited="after", instruction=("prompt",))
    (ref,) = iter_webdataset(shard, keys=keys)
    assert ref.problem is None and ref.instruction == "x"
    np.testing.assert_array_equal(load_pair(ref).edited, colour(2))
    (default_ref,) = iter_webdataset(shard)
    assert "no edited image" in default_ref.problem
    with pytest.raises(ConfigError, match="both"):
        WebDatasetKeys(original=("img",), edited=("img",))


def test_malformed_samples_are_invalid_refs_naming_shard_key_and_member(tmp_path):
    shard = write_tar(
        tmp_path / "bad.tar",
        [
            ("noedit.original.png", png(colour(1))),
            ("twice.src.jpg", png(colour(1))),
            ("twice.original.png", png(colour(1))),
            ("twice.edited.png", png(colour(2))),
            ("badjson.edited.png", png(colour(2))),
            ("badjson.json", b"{not json"),
            ("empty.edited.png", b""),
            ("fine.edited.png", png(colour(2))),
        ],
    )
    refs = {r.id: r for r in iter_webdataset(shard)}
    assert list(refs) == ["noedit", "twice", "badjson", "empty", "fine"]
    assert refs["noedit"].problem == (
        "bad.tar sample 'noedit': no edited image (expected a member such as "
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


def five_sample_shard(path: Path) -> Path:
    members = []
    for i in range(5):
        members += [
            (f"s{i}.original.png", png(colour(i))),
            (f"s{i}.edited.png", png(colour(i + 100))),
        ]
    return write_tar(path, members)


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
        write_tar(
            tmp_path / "shards" / f"train-{i:06d}.tar", [(f"k{i}.edited.png", png(colour(i)))]
        )
    write_tar(tmp_path / "shards" / ".train-000003.tar.tmp-1", [("x.edited.png", png(colour(1)))])
    folder = tmp_path / "shards"
    assert [r.id for r in iter_webdataset(folder)] == ["k0", "k1", "k2"]
    assert [r.id for r in iter_webdataset(f"{folder}/train-{{000002..000000}}.tar")] == [
        "k2",
        "k1",
        "k0",
    ]
    assert [r.id for r in iter_webdataset(f"{folder}/train-00000[01].tar")] == ["k0", "k1"]
    with pytest.raises(DataError, match="shard not found"):
        list_webdataset_shards(f"{folder}/train-{{000000..000003}}.tar")
    assert looks_like_webdataset(folder) and looks_like_webdataset(folder / "train-000000.tar")
    assert looks_like_webdataset(f"{folder}/train-{{000000..000001}}.tar")
    not_tar = tmp_path / "fake.tar"
    not_tar.write_bytes(png(colour(1)))
    assert not looks_like_webdataset(not_tar)
    assert not looks_like_webdataset(tmp_path / "nothing")
    assert not looks_like_parquet(folder)


# --------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------


def sample_refs() -> list[PairRef]:
    return [
        PairRef(
            id="coco/img.7 turn 1",  # dots and slashes cannot be member keys
            original=colour(1),
            edited=EncodedImage(png(colour(2)), "edited bytes"),
            instruction="make the sky red",
            mask=mask_array(3),
            meta={"score": np.float32(0.5), "task": "recolour"},
        ),
        PairRef(id="b", original=png(colour(3)), edited=Image.fromarray(colour(4)), negative=True),
        PairRef(
            id="c", original=None, edited=colour(5), instruction="crop", mask=mask_array(0) * 1.0
        ),
        PairRef(
            id="c", original=colour(6), edited=colour(7)
        ),  # duplicate id: keys must stay unique
        PairRef(id="e", original=colour(8), edited=colour(9), meta={"webdataset_shard": "old.tar"}),
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
    assert first.edited.data == png(colour(2))
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
    magicbrush_file(tmp_path / "mb.parquet", n=3)
    refs = iter_parquet(tmp_path / "mb.parquet", columns=MAGICBRUSH_WITH_BRUSH_MASK)
    shards = write_webdataset_shards(refs, tmp_path / "wds")
    refs = list(iter_webdataset(shards[0]))
    assert [(r.id, r.instruction) for r in refs] == [
        ("1000-1", "make it 0"),
        ("1001-2", "make it 1"),
        ("1002-1", "make it 2"),
    ]
    assert refs[2].meta["parquet_row"] == 2
    np.testing.assert_array_equal(load_pair(refs[2]).mask, mask_array(2))


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


def test_formats_are_registered_with_open_dataset(tmp_path):
    magicbrush = magicbrush_file(tmp_path / "mb.parquet", n=2)
    omniedit = write_parquet(tmp_path / "omni.parquet", preset_table("omniedit"))
    (shard,) = write_webdataset_shards(iter_parquet(magicbrush), tmp_path / "wds")
    # The specific MagicBrush benchmark reader wins over the generic Parquet reader.
    assert readers.detect_format(magicbrush) == "magicbrush"
    assert readers.detect_format(omniedit) == "parquet"
    assert readers.detect_format(shard.parent) == "webdataset"
    via_registry = readers.open_dataset(magicbrush, format="parquet", columns="magicbrush")
    assert [r.id for r in via_registry] == ["1000-1", "1001-2"]
    assert [r.id for r in readers.open_dataset(shard)] == ["1000-1", "1001-2"]
    (omni,) = readers.open_dataset(omniedit, columns="omniedit")
    assert omni.id == "task_obj_add_17"
