"""Perturbations of §4.3 and the robustness study (Fig. 4 layout)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigma_iml.data.pair import Pair
from sigma_iml.data.readers import open_dataset
from sigma_iml.errors import ConfigError
from sigma_iml.evaluation.evaluate import evaluate
from sigma_iml.evaluation.robustness import (
    DEFAULT_LEVELS,
    Perturbation,
    gaussian_blur,
    gaussian_noise,
    jpeg_compress,
    perturb_pair,
    plot_robustness,
    robustness_json,
    run_robustness,
    write_robustness,
)
from sigma_iml.methods import build_method


def _photo(seed: int = 0, size: int = 64) -> np.ndarray:
    small = np.random.default_rng(seed).integers(60, 190, size=(8, 8, 3), dtype=np.uint8)
    from PIL import Image

    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC))


def _pair(item: str = "p1") -> Pair:
    original = _photo(1)
    edited = original.copy()
    mask = np.zeros(original.shape[:2], dtype=bool)
    mask[10:30, 20:50] = True
    edited[mask] = 255 - edited[mask]
    return Pair(id=item, original=original, edited=edited, mask=mask)


def test_jpeg_error_grows_as_quality_drops():
    image = _photo()
    errors = [np.abs(jpeg_compress(image, q).astype(int) - image).mean() for q in (100, 90, 70, 50)]
    assert errors == sorted(errors) and errors[-1] > errors[0]
    assert jpeg_compress(image, 50).shape == image.shape


def test_noise_has_the_requested_variance_on_the_unit_scale():
    grey = np.full((200, 200, 3), 128, dtype=np.uint8)  # far from clipping
    for variance in (0.001, 0.01):
        noisy = gaussian_noise(grey, variance, np.random.default_rng(0))
        measured = ((noisy.astype(np.float64) - 128) / 255.0).var()
        assert measured == pytest.approx(variance, rel=0.08)


def test_blur_keeps_flat_images_and_spreads_an_impulse_with_the_kernel():
    flat = np.full((21, 21, 3), 77, dtype=np.uint8)
    assert np.array_equal(gaussian_blur(flat, 7), flat)
    impulse = np.zeros((21, 21, 3), dtype=np.uint8)
    impulse[10, 10] = 255
    spread = [np.count_nonzero(gaussian_blur(impulse, k)[:, :, 0]) for k in (3, 7, 11)]
    assert spread[0] < spread[1] < spread[2]


@pytest.mark.parametrize(
    ("kind", "level"),
    [
        ("jpeg", 0),
        ("jpeg", 101),
        ("jpeg", 72.5),
        ("blur", 4),
        ("noise", 0),
        ("noise", 2),
        ("sharpen", 1),
    ],
)
def test_bad_levels_are_refused(kind, level):
    with pytest.raises(ConfigError):
        Perturbation(kind, level)


def test_edited_target_leaves_the_original_and_the_mask_alone():
    pair = _pair()
    out = perturb_pair(pair, Perturbation("noise", 0.01), target="edited", seed=3)
    assert np.array_equal(out.original, pair.original)
    assert not np.array_equal(out.edited, pair.edited)
    assert out.mask is pair.mask


def test_both_target_draws_independent_noise_per_image():
    pair = _pair()
    out = perturb_pair(pair, Perturbation("noise", 0.01), target="both", seed=3)
    noise_original = out.original.astype(int) - pair.original
    noise_edited = out.edited.astype(int) - pair.edited
    assert noise_original.any() and noise_edited.any()
    outside = ~pair.mask
    assert not np.array_equal(noise_original[outside], noise_edited[outside])


def test_noise_is_reproducible_and_does_not_depend_on_order():
    first, second = _pair("a"), _pair("b")
    level = Perturbation("noise", 0.005)
    a1 = perturb_pair(first, level, seed=7).edited
    perturb_pair(second, level, seed=7)  # another pair in between changes nothing
    a2 = perturb_pair(first, level, seed=7).edited
    assert np.array_equal(a1, a2)
    assert not np.array_equal(a1, perturb_pair(first, level, seed=8).edited)
    assert not np.array_equal(a1, perturb_pair(second, level, seed=7).edited)


def test_clean_condition_matches_evaluate_and_noise_hurts_pixel_differencing(make_dataset):
    manifest = make_dataset(n=4, size=(64, 48))
    methods = [build_method("pixdiff-fixed:tau=0.05"), build_method("pixdiff-otsu")]
    levels = {"jpeg": [90], "noise": [0.01], "blur": [5]}
    result = run_robustness(
        open_dataset(manifest), methods, labels=["fixed", "otsu"], levels=levels, resolution=64
    )
    reference = evaluate(open_dataset(manifest), methods, resolution=64)
    for label, expected in zip(["fixed", "otsu"], reference):
        assert result.scores[label]["clean"].f1() == pytest.approx(expected.scores.f1())
        assert result.scores[label]["clean"].n == 4
    fixed_noise = result.series("fixed", "noise")[0]
    assert fixed_noise < result.scores["fixed"]["clean"].f1() - 0.2

    layout = result.to_dict()
    assert [p["perturbation"] for p in layout["panels"]] == ["jpeg", "noise", "blur"]
    noise_panel = layout["panels"][1]
    assert noise_panel["levels"] == [0.01]
    assert [s["method"] for s in noise_panel["series"]] == ["fixed", "otsu"]
    assert noise_panel["series"][0]["f1"] == [fixed_noise]
    assert set(noise_panel["series"][0]) >= {"clean", "f1", "iou", "f1_micro", "iou_micro", "n"}


def test_blurring_both_images_hurts_differencing_less_than_blurring_one(make_dataset):
    manifest = make_dataset(n=3, size=(64, 48))
    method = [build_method("pixdiff-fixed:tau=0.05")]
    levels = {"blur": [7]}
    one = run_robustness(
        open_dataset(manifest), method, levels=levels, target="edited", resolution=64
    )
    both = run_robustness(
        open_dataset(manifest), method, levels=levels, target="both", resolution=64
    )
    spec = method[0].spec()
    assert both.series(spec, "blur")[0] > one.series(spec, "blur")[0] + 0.1


def test_failed_pairs_are_listed_not_scored(make_dataset):
    manifest = make_dataset(n=3)
    (manifest.parent / "edited" / "pair001.png").write_bytes(b"not a png")
    result = run_robustness(
        open_dataset(manifest), [build_method("pixdiff-otsu")], levels={"jpeg": [80]}, resolution=32
    )
    assert [f["id"] for f in result.failures] == ["pair001"]
    assert result.scores["pixdiff-otsu:resolution=518"]["clean"].n == 2


def test_outputs_json_and_png_without_touching_global_matplotlib_state(make_dataset, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    manifest = make_dataset(n=2)
    result = run_robustness(
        open_dataset(manifest),
        [build_method("pixdiff-otsu")],
        labels=["otsu"],
        levels={"jpeg": [80, 50], "blur": [3]},
        dataset="tiny",
        resolution=32,
    )
    before = dict(matplotlib.rcParams)
    files = write_robustness([result], tmp_path / "rob")
    assert dict(matplotlib.rcParams) == before
    data = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert data["datasets"][0]["dataset"] == "tiny"
    assert "ours" in data["levels_source"]
    png = (tmp_path / "rob" / "robustness.png").read_bytes()
    assert files["png"].endswith("robustness.png") and png.startswith(b"\x89PNG")
    # the figure is drawn from the JSON alone, e.g. for a re-plot of an older run
    plot_robustness(robustness_json([result]), tmp_path / "again.png", metric="iou")
    assert (tmp_path / "again.png").stat().st_size > 1000


def test_default_levels_are_valid():
    for kind, levels in DEFAULT_LEVELS.items():
        for level in levels:
            Perturbation(kind, level)
