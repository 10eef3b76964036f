"""Grounding (Eq. 7), ACSF (Eq. 8), the branch and its panel, through tiny
GroundingDINO and SAM 2 models."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sigma_iml.data.pair import Pair
from sigma_iml.errors import ConfigError
from sigma_iml.instruction import grounding
from sigma_iml.instruction.branch import InstructionBranch
from sigma_iml.instruction.fusion import fuse, pool_to_grid, prior_batch
from sigma_iml.instruction.grounding import (
    Grounder,
    concept_map,
    detection_prompt,
    sam2_preprocess,
    sam2_scale_boxes,
)
from sigma_iml.instruction.panel import save_instruction_panel

EPS = 0.01


# ----------------------------------------------------------------------------- Eq. 7


def test_concept_map_is_eps_plus_scaled_instance_max():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, :2, :2] = True
    masks[1, 1:3, 1:3] = True
    result = concept_map(masks, (4, 4), EPS)
    union = masks.any(0)
    assert np.allclose(result[union], 1.0) and np.allclose(result[~union], EPS)
    assert result.dtype == np.float32


def test_concept_map_resizes_and_stays_in_range():
    masks = np.zeros((1, 8, 8), dtype=np.float32)
    masks[0, :, :4] = 1.0
    result = concept_map(masks, (16, 32), 0.05)
    assert result.shape == (16, 32)
    assert result.min() >= 0.05 - 1e-6 and result.max() <= 1.0 + 1e-6
    assert result[:, :14].mean() > 0.99 and result[:, 18:].mean() < 0.06


@pytest.mark.parametrize("masks", [None, np.zeros((0, 5, 5), dtype=bool)])
def test_nothing_detected_gives_the_eps_map(masks):
    assert np.array_equal(concept_map(masks, (3, 7), EPS), np.full((3, 7), EPS, np.float32))


# ----------------------------------------------------------------------------- Eq. 8


def test_acsf_rules():
    a_o = np.array([[1.0, EPS], [0.5, 1.0]], np.float32)
    a_e = np.array([[EPS, 1.0], [0.5, 1.0]], np.float32)
    assert np.array_equal(fuse("add", a_o, a_e), a_e)
    assert np.array_equal(fuse("remove", a_o, a_e), a_o)
    for action in ("replace", "attribute change"):
        assert np.allclose(fuse(action, a_o, a_e), a_o * a_e)
    assert np.array_equal(fuse("global", a_o, a_e, 0.02), np.full((2, 2), 0.02, np.float32))
    with pytest.raises(ConfigError):
        fuse("teleport", a_o, a_e)


def test_pooling_to_the_token_grid_is_an_area_mean():
    intent = np.zeros((74, 74), np.float32)
    intent[:2, :2] = 1.0  # exactly one 2x2 cell of the 37x37 grid
    pooled = pool_to_grid(intent, (37, 37))
    assert pooled.shape == (37, 37) and pooled[0, 0] == 1.0 and pooled.sum() == 1.0
    batch = prior_batch([intent, intent * 0.5], (37, 37))
    assert batch.shape == (2, 1, 37, 37) and batch.dtype == torch.float32


# ----------------------------------------------------------------------------- SAM 2 input


def test_sam2_preprocessing_follows_the_documented_processor():
    # Sam2ImageProcessor cannot be imported without torchvision: read what it documents.
    import transformers.models.sam2 as sam2_pkg

    text = (Path(sam2_pkg.__file__).parent / "image_processing_sam2.py").read_text()
    assert re.search(r'size = \{"height": 1024, "width": 1024\}', text)
    assert (
        "image_mean = IMAGENET_DEFAULT_MEAN" in text and "image_std = IMAGENET_DEFAULT_STD" in text
    )
    assert "resample = PILImageResampling.BILINEAR" in text
    from transformers import Sam2Config
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    assert tuple(grounding.IMAGENET_MEAN) == tuple(IMAGENET_DEFAULT_MEAN)
    assert tuple(grounding.IMAGENET_STD) == tuple(IMAGENET_DEFAULT_STD)
    assert list(Sam2Config().vision_config.backbone_config.image_size) == [1024, 1024]


def test_sam2_preprocessing_values():
    # A flat image: exactly (value/255 - mean) / std at every pixel.
    flat = np.full((30, 50, 3), (255, 128, 0), dtype=np.uint8)
    out = sam2_preprocess([flat], 64)
    assert out.shape == (1, 3, 64, 64)
    expected = (np.array([255, 128, 0]) / 255.0 - np.array(grounding.IMAGENET_MEAN)) / np.array(
        grounding.IMAGENET_STD
    )
    assert np.allclose(out[0].mean(dim=(1, 2)).numpy(), expected, atol=1e-5)
    # A smooth image: the resize agrees with Pillow's bilinear resize (the processor's).
    yy, xx = np.mgrid[0:90, 0:120]
    smooth = np.stack([xx * 2, yy * 2, (xx + yy)], -1).clip(0, 255).astype(np.uint8)
    ours = sam2_preprocess([smooth], 64)[0].numpy()
    pil = np.asarray(Image.fromarray(smooth).resize((64, 64), Image.Resampling.BILINEAR)) / 255.0
    reference = ((pil - grounding.IMAGENET_MEAN) / grounding.IMAGENET_STD).transpose(2, 0, 1)
    assert np.abs(ours - reference)[:, 2:-2, 2:-2].max() < 0.05


def test_box_scaling():
    boxes = np.array([[10, 20, 110, 60]], np.float32)  # in a 200 (w) x 100 (h) image
    assert np.allclose(sam2_scale_boxes(boxes, (100, 200), 1024), [[51.2, 204.8, 563.2, 614.4]])
    assert detection_prompt("  Red  Car ") == "red car."


# ----------------------------------------------------------------------------- tiny models


def _pairs(rng, instructions):
    return [
        Pair(
            f"p{index}",
            rng.integers(0, 256, (72 + 8 * index, 96, 3), dtype=np.uint8),
            rng.integers(0, 256, (72 + 8 * index, 96, 3), dtype=np.uint8),
            instruction,
        )
        for index, instruction in enumerate(instructions)
    ]


@pytest.fixture(scope="module")
def tiny_grounder_settings(tiny_instruction_models):
    return dict(
        detector=str(tiny_instruction_models["grounding-dino"]),
        segmenter=str(tiny_instruction_models["sam2"]),
        device="cpu",
        local_files_only=True,
    )


def test_grounder_returns_maps_of_the_image_size_in_range(tiny_grounder_settings):
    grounder = Grounder(**{k: v for k, v in tiny_grounder_settings.items()}, batch_size=2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (60 + 10 * i, 80, 3), dtype=np.uint8) for i in range(3)]
    maps = grounder.ground(images, ["cat", None, "red car"])
    assert [m.shape for m in maps] == [(60, 80), (70, 80), (80, 80)]
    for m in maps:
        assert m.dtype == np.float32 and m.min() >= EPS - 1e-6 and m.max() <= 1.0 + 1e-6
    assert np.all(maps[1] == EPS)  # no concept: no model call, the ε map
    # The random detector is confident about something: the map is not uniform.
    assert maps[0].max() == pytest.approx(1.0)
    # Loaded once per process and configuration.
    assert grounder.models is Grounder(**tiny_grounder_settings).models


def test_nothing_detected_gives_eps_maps(tiny_grounder_settings):
    grounder = Grounder(**tiny_grounder_settings, box_threshold=1.0, epsilon=0.03)
    image = np.zeros((40, 50, 3), dtype=np.uint8)
    detections = grounder.detect([image], ["cat"])
    assert detections[0].boxes.shape == (0, 4)
    assert np.all(grounder.ground([image], ["cat"])[0] == np.float32(0.03))


def test_branch_runs_parse_ground_fuse(tiny_grounder_settings, tmp_path):
    branch = InstructionBranch.from_config(
        dict(parser="rules", cache=str(tmp_path / "cache.sqlite"), **tiny_grounder_settings)
    )
    rng = np.random.default_rng(1)
    pairs = _pairs(
        rng,
        [
            "add a hat on the person",
            "remove the cat",
            "replace the cat with a dog",
            "make it snowy",
            None,
        ],
    )
    results = branch(pairs)
    assert [r.id for r in results] == [p.id for p in pairs]
    assert [r.edit.action for r in results] == ["add", "remove", "replace", "global", "global"]
    for pair, result in zip(pairs, results):
        assert result.intent_map.shape == pair.edited.shape[:2]
        assert set(result.timings) == {"parse", "ground", "fuse"}
        prior = result.prior((37, 37))
        assert prior.shape == (37, 37) and prior.min() >= 0.0 and prior.max() <= 1.0
    add, remove, replace, global_, none = results
    assert np.array_equal(add.intent_map, add.edited_map)
    assert np.all(add.original_map == EPS)  # c_o is null for add
    assert np.array_equal(remove.intent_map, remove.original_map)
    assert np.all(remove.edited_map == EPS)
    assert np.allclose(replace.intent_map, replace.original_map * replace.edited_map)
    assert np.all(global_.intent_map == EPS) and np.all(none.intent_map == EPS)
    assert none.parse.method == "none"
    # The second call reads the parse cache.
    assert all(r.parse.cached for r in branch(pairs[:3]))


def test_stages_switch_off(tmp_path):
    pairs = _pairs(np.random.default_rng(2), ["remove the cat", "replace the cat with a dog"])
    no_grounding = InstructionBranch.from_config(dict(parser="rules", grounding=False, map_size=32))
    results = no_grounding(pairs)
    assert results[0].edit.action == "remove"
    for result in results:
        assert result.intent_map.shape == (32, 32)
    assert np.all(results[0].intent_map == EPS)
    assert np.allclose(results[1].intent_map, EPS * EPS)  # product of two ε maps
    no_parser = InstructionBranch.from_config(dict(parser="none", grounding=False, epsilon=0.05))
    results = no_parser(pairs)
    assert all(r.edit.action == "global" for r in results)
    assert all(np.allclose(r.prior((5, 5)), 0.05) for r in results)
    with pytest.raises(ConfigError):
        InstructionBranch.from_config(dict(parser="gpt"))
    with pytest.raises(ConfigError):
        InstructionBranch.from_config(dict(prser="rules"))


def test_panel_is_written(tmp_path):
    pairs = _pairs(np.random.default_rng(3), ["remove the cat"])
    result = InstructionBranch.from_config(dict(parser="rules", grounding=False))(pairs)[0]
    path = save_instruction_panel(
        tmp_path / "panels" / "p0.png", pairs[0], result, np.ones((72, 96), bool)
    )
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 5 * image.height
