"""Inpainting pairs (``make-pairs --from-images DIR --inpaint MODEL``) with the tiny
random SD inpainting pipeline of :mod:`sigma_iml.testing.inpainting`, on CPU."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from sigma_iml.cli.make_pairs import register
from sigma_iml.data.images import load_image, load_mask
from sigma_iml.data.readers import open_dataset
from sigma_iml.data.synth.inpainting import (
    MASK_FRACTION,
    MASK_SHAPES,
    InpaintConfig,
    draw_mask,
    load_inpainting_pipeline,
    make_inpainting_pairs,
    parse_shapes,
    working_size,
)
from sigma_iml.errors import ConfigError
from sigma_iml.hub import WEIGHTS_ENV, set_weights_dir, weight_variants
from sigma_iml.testing.inpainting import write_tiny_inpainting_pipeline


@pytest.fixture(scope="module")
def tiny_inpaint(tmp_path_factory) -> Path:
    return write_tiny_inpainting_pipeline(tmp_path_factory.mktemp("tiny") / "inpaint")


@pytest.fixture(scope="module")
def tiny_inpaint_fp16(tmp_path_factory, tiny_inpaint) -> Path:
    """The tiny pipeline re-saved the way SD 1.5 inpainting is published: fp16-variant
    safetensors only (``unet/diffusion_pytorch_model.fp16.safetensors``, ...)."""
    import torch
    from diffusers import StableDiffusionInpaintPipeline

    folder = tmp_path_factory.mktemp("tiny16") / "inpaint"
    pipeline = StableDiffusionInpaintPipeline.from_pretrained(tiny_inpaint)
    pipeline.to(torch.float16).save_pretrained(folder, variant="fp16", safe_serialization=True)
    weights = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.safetensors"))
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    return folder


def _image_folder(root: Path, sizes: list[tuple[int, int]]) -> Path:
    """Smooth random photos of the given ``(width, height)``, one a JPEG in a subfolder."""
    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    for index, (width, height) in enumerate(sizes):
        small = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
        if index == 1:
            (root / "sub").mkdir(exist_ok=True)
            image.save(root / "sub" / f"photo{index}.jpg", quality=95)
        else:
            image.save(root / f"photo{index}.png")
    return root


def _settings(model: Path, **changes) -> InpaintConfig:
    # One step with CFG on (guidance > 1): the real code path, at toy cost.
    return InpaintConfig(
        model=str(model), steps=1, guidance=3.0, resolution=32, device="cpu", **changes
    )


def test_three_pairs_have_exact_masks(tmp_path, tiny_inpaint):
    images = _image_folder(tmp_path / "photos", [(72, 56), (64, 64), (48, 80)])
    manifest = make_inpainting_pairs(tmp_path / "pairs", images, 3, _settings(tiny_inpaint), seed=5)
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["id"] for r in records] == ["inpaint_000000", "inpaint_000001", "inpaint_000002"]
    assert [r["mask_shape"] for r in records] == list(MASK_SHAPES)
    assert [r["source_image"] for r in records] == ["photo0.png", "photo2.png", "sub/photo1.jpg"]
    for record in records:
        original = load_image(tmp_path / "pairs" / record["original"])
        edited = load_image(tmp_path / "pairs" / record["edited"])
        mask = load_mask(tmp_path / "pairs" / record["mask"])
        assert original.shape == edited.shape and mask.shape == original.shape[:2]
        assert (record["width"], record["height"]) == (original.shape[1], original.shape[0])
        # Exact: outside the mask, the original's pixels, bit for bit ...
        assert np.array_equal(edited[~mask], original[~mask])
        # ... and inside it the pipeline's (random weights: nearly every pixel differs).
        changed = np.any(edited != original, axis=2)
        assert changed[mask].mean() > 0.5
        low, high = MASK_FRACTION
        assert low <= mask.mean() <= high
        assert record["instruction"] == f"add {record['prompt']}"
        assert record["action"] == "add" and record["original_concept"] == "null"
    # The source photos are the originals, unchanged.
    first = np.asarray(Image.open(images / "photo0.png").convert("RGB"))
    assert np.array_equal(load_image(tmp_path / "pairs" / records[0]["original"]), first)
    # The folder reads as a dataset through its manifest, like make-pairs output.
    refs = list(open_dataset(tmp_path / "pairs"))
    assert [ref.id for ref in refs] == [r["id"] for r in records]
    assert all(ref.problem is None and ref.has_mask for ref in refs)


def test_cli_writes_pairs_and_refuses_half_the_options(tmp_path, tiny_inpaint):
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps "make-pairs" a named command
        pass

    images = _image_folder(tmp_path / "photos", [(40, 40)])
    out = tmp_path / "pairs"
    args = ["make-pairs", "--out", str(out), "--n", "1", "--from-images", str(images)]
    result = CliRunner().invoke(
        app,
        [
            *args,
            *("--inpaint", str(tiny_inpaint), "--steps", "1", "--resolution", "32"),
            *("--device", "cpu", "--mask-shapes", "ellipse"),
        ],
    )
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert record["mask_shape"] == "ellipse" and record["steps"] == 1
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "--inpaint" in result.output


def test_masks_are_seeded_and_shaped():
    rng = np.random.default_rng(0)
    for shape in MASK_SHAPES:
        a = draw_mask(shape, (96, 64), np.random.default_rng(3))
        b = draw_mask(shape, (96, 64), np.random.default_rng(3))
        assert a.shape == (64, 96) and np.array_equal(a, b)
        assert MASK_FRACTION[0] <= draw_mask(shape, (96, 64), rng).mean() <= MASK_FRACTION[1]


def test_working_size_and_shapes_parsing():
    assert working_size((1000, 500), 512) == (512, 256)
    assert working_size((333, 500), 512) == (344, 512)
    assert all(side % 8 == 0 for side in working_size((97, 61), 64))
    assert parse_shapes(None) == MASK_SHAPES
    assert parse_shapes("Strokes, polygon") == ("strokes", "polygon")
    with pytest.raises(ConfigError, match="circle"):
        parse_shapes("circle")
    with pytest.raises(ConfigError):
        InpaintConfig.from_dict({"model": "x", "shapes": []})


def test_missing_model_is_a_config_error(tmp_path):
    images = _image_folder(tmp_path / "photos", [(40, 40)])
    settings = InpaintConfig(model=str(tmp_path / "nothing"), device="cpu", local_files_only=True)
    with pytest.raises(ConfigError, match="inpainting pipeline"):
        make_inpainting_pairs(tmp_path / "pairs", images, 1, settings)


def _fp16_pair_is_valid(pairs: Path, manifest: Path) -> None:
    (record,) = [json.loads(line) for line in manifest.read_text().splitlines()]
    original = load_image(pairs / record["original"])
    edited = load_image(pairs / record["edited"])
    mask = load_mask(pairs / record["mask"])
    assert np.array_equal(edited[~mask], original[~mask])
    assert np.any(edited != original, axis=2)[mask].mean() > 0.5


def test_an_fp16_variant_only_pipeline_loads_and_runs_in_float32_on_cpu(
    tmp_path, tiny_inpaint, tiny_inpaint_fp16
):
    import torch
    from safetensors.torch import load_file

    assert weight_variants(str(tiny_inpaint)) == (None,)
    assert weight_variants(str(tiny_inpaint_fp16)) == ("fp16",)
    # float32 asked for: on a CPU with bf16 units "auto" would load bf16 weights.
    pipeline, device = load_inpainting_pipeline(_settings(tiny_inpaint_fp16, precision="fp32"))
    assert str(device) == "cpu" and pipeline.unet.dtype == torch.float32
    assert pipeline.text_encoder.dtype == torch.float32 and pipeline.vae.dtype == torch.float32
    # The fp16 file's weights, upcast: the plain weights rounded to half precision.
    plain = load_file(tiny_inpaint / "unet" / "diffusion_pytorch_model.safetensors")
    name = "conv_in.weight"
    assert torch.equal(pipeline.unet.state_dict()[name], plain[name].half().float())
    assert not torch.equal(plain[name].half().float(), plain[name])
    images = _image_folder(tmp_path / "photos", [(40, 48)])
    settings = _settings(tiny_inpaint_fp16, shapes=("ellipse",))
    manifest = make_inpainting_pairs(tmp_path / "pairs", images, 1, settings, pipeline=pipeline)
    _fp16_pair_is_valid(tmp_path / "pairs", manifest)


def test_make_pairs_loads_an_fp16_only_hub_model_from_a_weights_folder(
    tmp_path, tiny_inpaint_fp16, monkeypatch
):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    shutil.copytree(tiny_inpaint_fp16, tmp_path / "w" / "owner--inpaint-fp16")
    set_weights_dir(tmp_path / "w")
    try:
        images = _image_folder(tmp_path / "photos", [(40, 40)])
        settings = _settings(Path("owner/inpaint-fp16"), shapes=("strokes",))
        manifest = make_inpainting_pairs(tmp_path / "pairs", images, 1, settings)
    finally:
        set_weights_dir(None)
    _fp16_pair_is_valid(tmp_path / "pairs", manifest)


def test_a_hub_model_is_tried_plain_then_fp16(tiny_inpaint_fp16, monkeypatch):
    import sigma_iml.hub

    # What a hub id gets (its files cannot be listed offline): plain fails on the
    # fp16-only files, the fp16 retry loads.
    assert weight_variants("owner/not-here") == (None, "fp16")
    tried = []

    def hub_order(source, subfolder=None):
        tried.append(source)
        return (None, "fp16")

    monkeypatch.setattr(sigma_iml.hub, "weight_variants", hub_order)
    pipeline, _ = load_inpainting_pipeline(_settings(tiny_inpaint_fp16))
    assert tried == [str(tiny_inpaint_fp16)] and pipeline.unet is not None
    # Both failures are reported when nothing loads.
    settings = InpaintConfig(model=str(tiny_inpaint_fp16.parent), device="cpu")
    with pytest.raises(ConfigError, match=r"variant none.*variant fp16"):
        load_inpainting_pipeline(settings)
