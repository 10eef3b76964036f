"""The ``brgen`` format on a tiny copy in BR-Gen's layout (as docs/corpora.md infers it),
with the originals in separate "COCO", "ImageNet" and "Places" folders of the user's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from PIL import Image
from typer.testing import CliRunner

from sigma_iml.cli.evaluate import register as register_evaluate
from sigma_iml.data.formats.brgen import iter_brgen, parse_originals, write_dataset_file
from sigma_iml.data.pair import load_pair
from sigma_iml.data.readers import detect_format, open_dataset, reader_options
from sigma_iml.errors import ConfigError, DataError

COCO, COCO_2 = "000000000139", "000000000285"
IMAGENET = "n01440764_10026"
PLACES = "00000001"


def _image(path: Path, seed: int, size=(40, 32), mask: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    width, height = size
    if mask:
        array = np.zeros((height, width), np.uint8)
        array[4:20, 6:30] = 255
    else:
        array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def make_brgen(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A BR-Gen folder (lists, masks, forged images of every method and mask type) and
    the user's original folders: COCO flat, ImageNet in class folders, Places missing
    the one image BR-Gen lists."""
    root = tmp_path / "BR-Gen"
    real = root / "RealImage"
    (real / "COCO").mkdir(parents=True)
    (real / "COCO" / "COCO_image_list.txt").write_text(f"{COCO}.jpg\n{COCO_2}.jpg\n")
    (real / "ImageNet").mkdir()
    (real / "ImageNet" / "ImageNet_image_list.txt").write_text(f"{IMAGENET}.JPEG\n")
    (real / "Places").mkdir()
    (real / "Places" / "Places_image_list.txt").write_text(f"a/abbey/{PLACES}.jpg\n")
    train = root / "train"
    for mask_type, method, stem in (
        ("Stuff", "LaMa", COCO),
        ("Stuff", "SDXL", COCO),
        ("Background", "BrushNet", COCO),
        ("Stuff", "PowerPaint", f"{IMAGENET}"),
        ("Background", "MAT", PLACES),
        ("Background", "MAT", "not_listed"),
    ):
        _image(train / mask_type / method / f"{stem}.png", seed=len(stem) + len(method))
        _image(train / mask_type / "Mask" / f"{stem}.png", 0, mask=True)
    originals = {"coco": tmp_path / "coco", "imagenet": tmp_path / "imagenet"}
    _image(originals["coco"] / f"{COCO}.jpg", 1)
    _image(originals["imagenet"] / "n01440764" / f"{IMAGENET}.JPEG", 2)
    originals["places"] = tmp_path / "places"
    originals["places"].mkdir()
    return root, originals


def _valid(refs):
    return [r for r in refs if r.problem is None]


def test_pairs_forged_images_masks_and_the_users_originals(tmp_path):
    root, originals = make_brgen(tmp_path)
    assert detect_format(root) == "brgen"
    refs = list(iter_brgen(root, originals=originals))
    assert sorted(r.id for r in _valid(refs)) == [
        f"brgen_train_background_brushnet_{COCO}",
        f"brgen_train_stuff_lama_{COCO}",
        f"brgen_train_stuff_powerpaint_{IMAGENET}",
        f"brgen_train_stuff_sdxl_{COCO}",
    ]
    by_id = {r.id: r for r in refs}
    lama = by_id[f"brgen_train_stuff_lama_{COCO}"]
    assert lama.original == originals["coco"] / f"{COCO}.jpg"
    assert lama.mask == root / "train" / "Stuff" / "Mask" / f"{COCO}.png"
    assert lama.meta["method"] == "lama" and lama.meta["mask_type"] == "stuff"
    pair = load_pair(lama)
    assert pair.mask is not None and pair.mask.sum() == 16 * 24
    assert pair.instruction is None and pair.original.shape == pair.edited.shape
    imagenet = by_id[f"brgen_train_stuff_powerpaint_{IMAGENET}"]
    assert imagenet.original == originals["imagenet"] / "n01440764" / f"{IMAGENET}.JPEG"


def test_an_original_not_found_is_a_named_error(tmp_path):
    root, originals = make_brgen(tmp_path)
    refs = {r.id: r for r in iter_brgen(root, originals=originals)}
    with pytest.raises(DataError) as caught:
        load_pair(refs[f"brgen_train_background_mat_{PLACES}"])
    message = str(caught.value)
    assert f"brgen_train_background_mat_{PLACES}" in message
    assert "RealImage/Places/Places_image_list.txt:1" in message
    assert str(originals["places"]) in message
    with pytest.raises(DataError, match="not listed in RealImage/COCO/COCO_image_list.txt"):
        load_pair(refs["brgen_train_background_mat_not_listed"])
    # No folder for a set: the error says which option names it.
    no_imagenet = {k: v for k, v in originals.items() if k != "imagenet"}
    refs = {r.id: r for r in iter_brgen(root, originals=no_imagenet)}
    with pytest.raises(DataError, match="--originals imagenet=DIR"):
        load_pair(refs[f"brgen_train_stuff_powerpaint_{IMAGENET}"])


def test_method_mask_type_and_split_filters(tmp_path):
    root, originals = make_brgen(tmp_path)
    refs = list(iter_brgen(root, originals=originals, methods="LaMa,sdxl", mask_types=["Stuff"]))
    assert sorted(r.id for r in refs) == [
        f"brgen_train_stuff_lama_{COCO}",
        f"brgen_train_stuff_sdxl_{COCO}",
    ]
    assert list(iter_brgen(root, originals=originals, split="test")) == []
    assert len(list(iter_brgen(root, originals=originals, split="train"))) == 6
    with pytest.raises(ConfigError, match="dalle"):
        list(iter_brgen(root, methods="dalle"))


def test_dataset_file_and_originals_option(tmp_path):
    root, originals = make_brgen(tmp_path)
    text = ",".join(f"{k}={v}" for k, v in originals.items())
    assert parse_originals(text) == originals
    assert parse_originals({"COCO": "x"}) == {"coco": Path("x")}
    with pytest.raises(ConfigError, match="SET=DIR"):
        parse_originals("coco")
    # A dataset file names the download (relative to the file) and the originals.
    listing = tmp_path / "brgen.yaml"
    listing.write_text(
        yaml.safe_dump(
            {
                "format": "brgen",
                "root": "BR-Gen",
                "originals": {k: v.name for k, v in originals.items()},  # relative
                "methods": ["lama"],
            }
        )
    )
    assert detect_format(listing) == "brgen"
    assert [r.id for r in _valid(open_dataset(listing))] == [f"brgen_train_stuff_lama_{COCO}"]
    # train --originals writes one, keeping the file's other options.
    written = write_dataset_file(
        tmp_path / "run" / "data.brgen.yaml", listing, "coco=" + str(originals["coco"])
    )
    assert [r.id for r in _valid(open_dataset(written))] == [f"brgen_train_stuff_lama_{COCO}"]
    # --originals implies the brgen format and belongs to it only.
    assert reader_options(None, originals=text) == ("brgen", {"originals": text})
    assert reader_options(None) == (None, {})
    with pytest.raises(ConfigError, match="--originals applies to the brgen format"):
        reader_options("folder", originals=text)


def test_evaluate_reads_brgen_with_originals(tmp_path):
    root, originals = make_brgen(tmp_path)
    app = typer.Typer()
    register_evaluate(app)
    text = ",".join(f"{k}={v}" for k, v in originals.items())
    result = CliRunner().invoke(
        app,
        ["evaluate", "--data", str(root), "--originals", text, "-m", "pixdiff-fixed"],
        env={"COLUMNS": "200"},
    )
    # The fixture's Places original is missing: that pair is skipped, named, and the
    # exit status says some pairs failed (README "Exit status").
    assert result.exit_code == 4, result.output
    assert "skipped" in result.output and "Places_image_list.txt" in result.output


def test_train_originals_write_a_dataset_file_in_the_run(tmp_path):
    from sigma_iml.cli.train import _with_originals

    root, originals = make_brgen(tmp_path)
    text = ",".join(f"{k}={v}" for k, v in originals.items())
    out = tmp_path / "run"
    written = _with_originals(root, text, out, "data")
    assert written == out / "data.brgen.yaml"
    assert len(_valid(open_dataset(written))) == 4
    assert _with_originals(root, None, out, "data") == root
    other = tmp_path / "other"
    for name in ("original", "edited"):
        _image(other / name / "a.png", 3)
    assert _with_originals(other, text, out, "val", required=False) == other
    with pytest.raises(ConfigError, match="--originals is for BR-Gen"):
        _with_originals(other, text, out, "data")
