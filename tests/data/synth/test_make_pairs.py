"""Tests of the synthetic editing-pair generator and its ``make-pairs`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from sigma_iml.cli.make_pairs import _KIND_NAMES, parse_kinds, parse_size, register
from sigma_iml.data.images import load_image, load_mask
from sigma_iml.data.synth import EDIT_KINDS, LOCAL_MASK_FRACTION, make_item, make_pairs
from sigma_iml.errors import ConfigError

# Two items of each kind (kinds cycle), so every kind is seen on two different photos.
N_ITEMS = 10

# Words an instruction of each kind starts with or contains, in the corpora's phrasing.
ACTION_WORDS = {
    "add": ("add", "put", "insert", "place"),
    "remove": ("remove", "delete", "erase", "take away", "get rid of"),
    "attribute change": ("make", "change the color", "turn", "paint"),
    "replace": ("replace", "swap", "turn", "change"),
    "global": (
        "make it",
        "turn it",
        "change the time",
        "give it",
        "apply",
        "convert",
        "make the colors",
    ),
}


def _read_manifest(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A noise-free set of every kind, written once for the module."""
    out = tmp_path_factory.mktemp("clean")
    make_pairs(out, N_ITEMS, seed=3)
    return out


@pytest.fixture(scope="module")
def noisy_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same items as ``clean_set`` with re-synthesis noise."""
    out = tmp_path_factory.mktemp("noisy")
    make_pairs(out, N_ITEMS, seed=3, noise=0.6)
    return out


def test_manifest_fields_and_paths(clean_set: Path) -> None:
    records = _read_manifest(clean_set / "manifest.jsonl")
    assert [r["id"] for r in records] == [f"synth_{i:06d}" for i in range(N_ITEMS)]
    assert [r["edit_type"] for r in records] == [EDIT_KINDS[i % 5] for i in range(N_ITEMS)]
    for record in records:
        for name in ("original", "edited", "mask"):
            relative = Path(record[name])
            assert not relative.is_absolute()
            assert relative == Path(name) / f"{record['id']}.png"
            assert (clean_set / relative).is_file()
        assert record["action"] == record["edit_type"]
        assert record["noise"] == 0.0 and record["noise_params"] == {}
        assert record["source_photo"].startswith("skimage.data.")
        width, height = record["width"], record["height"]
        assert 192 <= width <= 320 and 192 <= height <= 320
        assert load_image(clean_set / record["original"]).shape == (height, width, 3)
        assert load_image(clean_set / record["edited"]).shape == (height, width, 3)
    # Sizes are drawn per item, so a set of ten has non-square images.
    assert any(r["width"] != r["height"] for r in records)


def test_masks_are_8bit_binary_png(clean_set: Path) -> None:
    from PIL import Image

    for path in sorted((clean_set / "mask").glob("*.png")):
        with Image.open(path) as mask:
            assert mask.mode == "L"
            assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}


def test_mask_is_exactly_the_changed_pixels(clean_set: Path) -> None:
    low, high = LOCAL_MASK_FRACTION
    for record in _read_manifest(clean_set / "manifest.jsonl"):
        original = load_image(clean_set / record["original"])
        edited = load_image(clean_set / record["edited"])
        mask = load_mask(clean_set / record["mask"])
        changed = np.any(original != edited, axis=2)
        assert mask.mean() == pytest.approx(record["mask_fraction"], abs=1e-6)
        if record["edit_type"] == "global":
            assert mask.all()  # by design: a global edit targets the whole image
            assert changed.mean() > 0.5
        else:
            assert np.array_equal(mask, changed), record["id"]
            assert low <= mask.mean() <= high, record["id"]


def test_ground_truth_parse_and_instruction_wording(clean_set: Path) -> None:
    for record in _read_manifest(clean_set / "manifest.jsonl"):
        kind, text = record["edit_type"], record["instruction"]
        original, edited = record["original_concept"], record["edited_concept"]
        assert any(word in text for word in ACTION_WORDS[kind]), text
        if kind == "add":
            assert original == "null" and edited != "null" and edited in text
            assert record["donor_photo"] not in (None, record["source_photo"])
        elif kind == "remove":
            assert edited == "null" and original in text
        elif kind == "attribute change":
            color = record["details"]["color"]
            assert edited == f"{color} {original}"
            assert original in text and color in text
        elif kind == "replace":
            assert original in text and edited in text and original != "null"
            assert record["donor_photo"] not in (None, record["source_photo"])
        else:
            assert original == "null" and edited == "null"


def test_noise_touches_pixels_outside_the_mask_but_not_the_mask(
    clean_set: Path, noisy_set: Path
) -> None:
    clean_records = _read_manifest(clean_set / "manifest.jsonl")
    noisy_records = _read_manifest(noisy_set / "manifest.jsonl")
    for clean, noisy in zip(clean_records, noisy_records, strict=True):
        assert noisy["noise"] == 0.6 and noisy["noise_params"]["jpeg_quality"] < 95
        assert noisy["instruction"] == clean["instruction"]
        # The noise has its own random stream: the original, the edit and its mask stay.
        for name in ("original", "mask"):
            assert (noisy_set / noisy[name]).read_bytes() == (clean_set / clean[name]).read_bytes()
        if clean["edit_type"] == "global":
            continue
        mask = load_mask(noisy_set / noisy["mask"])
        original = load_image(noisy_set / noisy["original"])
        edited = load_image(noisy_set / noisy["edited"])
        changed_outside = np.any(original != edited, axis=2)[~mask]
        assert changed_outside.mean() > 0.5, noisy["id"]


def test_same_seed_is_byte_identical_and_items_do_not_depend_on_n(tmp_path: Path) -> None:
    make_pairs(tmp_path / "a", 5, seed=11, noise=0.3)
    make_pairs(tmp_path / "b", 5, seed=11, noise=0.3)
    make_pairs(tmp_path / "c", 3, seed=11, noise=0.3)
    first, second, shorter = (_files(tmp_path / name) for name in "abc")
    assert first == second
    for name, data in shorter.items():
        if name != "manifest.jsonl":
            assert first[name] == data
    first_lines = (tmp_path / "a" / "manifest.jsonl").read_text().splitlines()
    assert (tmp_path / "c" / "manifest.jsonl").read_text().splitlines() == first_lines[:3]


def test_another_seed_gives_other_pairs(tmp_path: Path) -> None:
    make_pairs(tmp_path / "a", 5, seed=11)
    make_pairs(tmp_path / "b", 5, seed=12)
    first, other = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first.keys() == other.keys()
    edited = [name for name in first if name.startswith("edited/")]
    assert all(first[name] != other[name] for name in edited)


def test_size_and_kinds_options(tmp_path: Path) -> None:
    manifest = make_pairs(tmp_path, 4, seed=5, kinds=("remove", "global"), size=(200, 176))
    records = _read_manifest(manifest)
    assert [r["edit_type"] for r in records] == ["remove", "global", "remove", "global"]
    for record in records:
        assert (record["width"], record["height"]) == (200, 176)
        assert load_image(tmp_path / record["edited"]).shape == (176, 200, 3)


def test_make_item_matches_written_files(clean_set: Path) -> None:
    item = make_item(2, seed=3)
    record = _read_manifest(clean_set / "manifest.jsonl")[2]
    assert item.id == record["id"] and item.record["instruction"] == record["instruction"]
    assert np.array_equal(item.edited, load_image(clean_set / record["edited"]))
    assert np.array_equal(item.mask, load_mask(clean_set / record["mask"]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": -1},
        {"noise": -0.1},
        {"noise": float("nan")},
        {"kinds": ()},
        {"kinds": ("recolor",)},
        {"size": (16, 300)},
    ],
)
def test_invalid_arguments_are_refused(tmp_path: Path, kwargs: dict) -> None:
    arguments = {"n": 1, **kwargs}
    with pytest.raises(ConfigError):
        make_pairs(tmp_path, **arguments)


def test_zero_items_writes_an_empty_manifest(tmp_path: Path) -> None:
    manifest = make_pairs(tmp_path, 0)
    assert manifest.read_text() == ""


def test_cli_make_pairs(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out = tmp_path / "cli"
    arguments = ["--out", str(out), "--n", "3", "--seed", "4", "--noise", "0.2"]
    arguments += ["--kinds", "attribute_change,add", "--size", "224x192"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert str(out / "manifest.jsonl") in result.output
    records = _read_manifest(out / "manifest.jsonl")
    assert [r["edit_type"] for r in records] == ["attribute change", "add", "attribute change"]
    assert {(r["width"], r["height"]) for r in records} == {(224, 192)}
    assert all(r["noise"] == 0.2 for r in records)


def test_cli_rejects_bad_options(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["--out", str(tmp_path), "--kinds", "recolor"])
    assert result.exit_code != 0 and "recolor" in result.output
    result = runner.invoke(app, ["--out", str(tmp_path), "--size", "big"])
    assert result.exit_code != 0


def test_cli_option_parsers() -> None:
    assert _KIND_NAMES == EDIT_KINDS
    assert parse_kinds(None) == EDIT_KINDS
    assert parse_kinds("Attribute-Change, global") == ("attribute change", "global")
    assert parse_size("256x192") == (256, 192)
    assert parse_size("240") == (240, 240)
    assert parse_size(None) is None


#: Which concept regions each kind has: ``(original, edited)`` (a ``null`` concept has none).
CONCEPT_REGIONS = {
    "add": (False, True),
    "remove": (True, False),
    "attribute change": (True, True),
    "replace": (True, True),
    "global": (False, False),
}


def test_concept_masks_are_where_the_concepts_are(clean_set: Path) -> None:
    """The concept regions (what a perfect grounder returns) lie inside the edit and
    account for most of it; absent concepts are null in the manifest."""
    from sigma_iml.data.readers import open_dataset

    refs = {ref.id: ref for ref in open_dataset(clean_set)}
    for record in _read_manifest(clean_set / "manifest.jsonl"):
        has = CONCEPT_REGIONS[record["action"]]
        names = ("original_concept_mask", "edited_concept_mask")
        assert tuple(record[name] is not None for name in names) == has, record["id"]
        ref = refs[record["id"]]
        assert (ref.original_concept_mask is not None, ref.edited_concept_mask is not None) == has
        mask = load_mask(clean_set / record["mask"])
        regions = [load_mask(clean_set / record[n]) for n in names if record[n] is not None]
        for region in regions:
            assert region.shape == mask.shape and region.any(), record["id"]
            assert mask[region].mean() >= 0.9, record["id"]
        if regions:
            assert np.any(regions, axis=0)[mask].mean() >= 0.6, record["id"]
