"""The ``manifest`` format: JSONL and CSV manifests; bad rows; streaming; decoding."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.data.pair import load_pair
from sigma_iml.errors import DataError


def test_manifest_jsonl_reads_pairs_relative_to_its_folder(make_dataset):
    manifest = make_dataset(n=3)
    refs = list(iter_manifest(manifest))
    assert [r.id for r in refs] == ["pair000", "pair001", "pair002"]
    assert refs[0].original == manifest.parent / "original" / "pair000.png"
    assert refs[1].instruction == "remove the object 1"
    pair = load_pair(refs[0])
    assert pair.mask is not None and pair.mask.shape == pair.edited.shape[:2]
    assert pair.mask.any()


def test_manifest_csv_matches_jsonl(make_dataset):
    manifest = make_dataset(n=2)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    csv_path = manifest.with_suffix(".csv")
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["id", "original", "edited", "instruction", "mask"]
        )
        writer.writeheader()
        writer.writerows(rows)
    assert [(r.id, r.edited, r.mask, r.instruction) for r in iter_manifest(csv_path)] == [
        (r.id, r.edited, r.mask, r.instruction) for r in iter_manifest(manifest)
    ]


def test_manifest_optional_fields_and_default_id(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"original": "o/a.png", "edited": "e/cat_01.png"}) + "\n")
    (ref,) = iter_manifest(manifest)
    assert ref.id == "cat_01" and ref.mask is None and ref.instruction is None


def test_manifest_extra_mask_columns_resolve_like_mask(tmp_path):
    """``intended_mask`` and the concept masks are paths under the same rules as
    ``mask``: kept on the ref (not in ``meta``); null or empty is absent; one leaving the
    dataset folder is a named failure naming its field."""
    manifest = tmp_path / "manifest.jsonl"
    rows = [
        {
            "id": "a",
            "original": "o/a.png",
            "edited": "e/a.png",
            "original_concept_mask": "oc/a.png",
            "edited_concept_mask": None,
            "intended_mask": "",
        },
        {"id": "b", "original": "o/b.png", "edited": "e/b.png", "edited_concept_mask": "../x.png"},
    ]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    first, second = iter_manifest(manifest)
    assert first.original_concept_mask == tmp_path / "oc" / "a.png"
    assert first.edited_concept_mask is None and first.intended_mask is None
    assert not {"original_concept_mask", "edited_concept_mask", "intended_mask"} & set(first.meta)
    assert second.problem is not None
    assert "edited_concept_mask" in second.problem and "escapes" in second.problem


@pytest.mark.parametrize(
    "row, message",
    [
        (
            {"id": "x", "original": "../outside.png", "edited": "e.png"},
            "escapes the dataset folder",
        ),
        ({"id": "x", "original": "/etc/passwd", "edited": "e.png"}, "absolute path"),
        ({"id": "x", "original": "a/../../b.png", "edited": "e.png"}, "escapes the dataset folder"),
        ({"id": "x", "original": "o.png"}, "missing required field 'edited'"),
        ({"id": "x", "edited": "e.png"}, "missing required field 'original'"),
        ({"id": "x", "original": "o.png", "edited": "e.png", "instruction": 5}, "must be a string"),
        ({"id": "x", "original": 3, "edited": "e.png"}, "not a string"),
    ],
)
def test_bad_manifest_rows_become_named_failures(tmp_path, row, message):
    manifest = tmp_path / "manifest.jsonl"
    good = {"id": "good", "original": "o.png", "edited": "e.png"}
    manifest.write_text(json.dumps(row) + "\n" + json.dumps(good) + "\n")
    bad, ok = list(iter_manifest(manifest))
    assert ok.id == "good" and ok.problem is None
    assert bad.problem is not None and message in bad.problem
    assert bad.source == "manifest.jsonl:1"
    with pytest.raises(DataError, match=message) as info:
        load_pair(bad)
    assert "manifest.jsonl:1" in str(info.value)


def test_unparsable_lines_do_not_stop_the_stream(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(
        '{"id": "a", "original": "o.png", "edited": "e.png"}\n{not json\n[1, 2]\n\n'
        '{"id": "b", "original": "o.png", "edited": "e.png"}\n'
    )
    refs = list(iter_manifest(manifest))
    assert [r.id for r in refs] == ["a", "manifest.jsonl:2", "manifest.jsonl:3", "b"]
    assert "invalid JSON" in refs[1].problem and "expected a JSON object" in refs[2].problem


def test_csv_row_with_too_many_cells(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,original,edited\na,o.png,e.png,extra\nb,o.png,e.png\n")
    refs = list(iter_manifest(manifest))
    assert refs[0].problem and "cells" in refs[0].problem and refs[1].id == "b"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_manifest_with_a_byte_order_mark_keeps_its_ids(tmp_path, suffix, encoding):
    """Spreadsheets save CSV with a UTF-8 mark, Windows tools UTF-16 with one: the mark
    is not part of the header (``\ufeffid`` would lose every id) nor of the first row."""
    manifest = tmp_path / f"manifest{suffix}"
    if suffix == ".csv":
        text = "id,original,edited,instruction\nchat,o.png,e.png,remplace le chat\n"
    else:
        row = {"id": "chat", "original": "o.png", "edited": "e.png", "instruction": "猫"}
        text = json.dumps(row, ensure_ascii=False) + "\n"
    manifest.write_bytes(text.encode(encoding))
    (ref,) = iter_manifest(manifest)
    assert ref.problem is None and ref.id == "chat" and ref.edited == tmp_path / "e.png"


def test_manifest_in_another_encoding_is_a_named_error(tmp_path):
    """UTF-16 without a byte-order mark (or Latin-1 bytes) cannot be told from UTF-8
    reliably: the error names the file and what to do, not a UnicodeDecodeError."""
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes("id,original,edited\nchat,o.png,e.png\n".encode("utf-16-le"))
    with pytest.raises(DataError, match="manifest.csv: holds NUL bytes: UTF-16.*save the file"):
        list(iter_manifest(manifest))
    manifest.write_bytes("id,original,edited\nchat,o.png,e.png,é\n".encode("latin-1"))
    with pytest.raises(DataError, match="manifest.csv: not valid UTF-8 text.*save the file"):
        list(iter_manifest(manifest))


def test_manifest_streams_instead_of_reading_everything(make_dataset):
    manifest = make_dataset(n=1)
    stream = iter_manifest(manifest)
    first = next(stream)
    # Lines appended after the first item was read are still seen: the reader holds an
    # open file and reads as it goes, it did not load the manifest up front.
    with manifest.open("a") as handle:
        handle.write(json.dumps({"id": "late", "original": "o.png", "edited": "e.png"}) + "\n")
    assert first.id == "pair000" and [r.id for r in stream] == ["late"]


def test_missing_image_and_mask_size_mismatch_name_the_item(make_dataset):
    manifest = make_dataset(n=2)
    root = manifest.parent
    (root / "original" / "pair000.png").unlink()
    Image.new("L", (7, 7)).save(root / "mask" / "pair001.png")
    first, second = iter_manifest(manifest)
    with pytest.raises(DataError) as info:
        load_pair(first)
    assert (
        "pair000" in str(info.value)
        and "original" in str(info.value)
        and "file not found" in str(info.value)
    )
    with pytest.raises(DataError, match="mask is 7x7 but the edited image is 48x40") as info:
        load_pair(second)
    assert "pair001" in str(info.value) and "pair001.png" in str(info.value)


def test_original_of_another_size_is_resized_and_recorded(make_dataset):
    manifest = make_dataset(n=1)
    path = manifest.parent / "original" / "pair000.png"
    Image.open(path).resize((96, 80)).save(path)
    pair = load_pair(next(iter_manifest(manifest)))
    assert pair.original.shape == pair.edited.shape == (40, 48, 3)
    assert pair.original_size == (96, 80) and pair.original_resized
