"""Grounding that batches: the same maps as one query at a time, fewer model calls, and
no grounding of a map ACSF does not read; precision at run time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sigma_iml.data.pair import Pair
from sigma_iml.errors import ConfigError
from sigma_iml.instruction.branch import GROUNDED_MAPS, InstructionBranch
from sigma_iml.instruction.edit_tuple import ACTIONS
from sigma_iml.instruction.grounding import Grounder


@pytest.fixture(scope="module")
def settings(tiny_instruction_models):
    return dict(
        detector=str(tiny_instruction_models["grounding-dino"]),
        segmenter=str(tiny_instruction_models["sam2"]),
        device="cpu",
        local_files_only=True,
        precision="fp32",
    )


class Calls:
    """Rows through the detector and SAM 2 forwards, counted by hooks on the real models."""

    def __init__(self, models):
        self.detector_rows, self.segmenter_rows = [], []
        self.handles = [
            models.detector.register_forward_pre_hook(
                lambda m, a, kw: self.detector_rows.append(kw["input_ids"].shape[0]),
                with_kwargs=True,
            ),
            models.segmenter.register_forward_pre_hook(
                lambda m, a, kw: self.segmenter_rows.append(kw["pixel_values"].shape[0]),
                with_kwargs=True,
            ),
        ]

    def close(self):
        for handle in self.handles:
            handle.remove()


def _images(seed, count, shape=(64, 80, 3)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


def test_batched_maps_equal_one_query_at_a_time(settings):
    a, b, c = _images(0, 3)
    odd = _images(1, 1, (56, 72, 3))[0]
    images = [a, a, b, a.copy(), c, odd, b]
    concepts = ["cat", "red car", "cat", "cat", None, "dog", "cat"]
    batched = Grounder(**settings, batch_size=8)
    models = batched.models
    text, image_backbone = models.detector.model.text_backbone, models.detector.model.backbone
    encoded_before = image_backbone.images_encoded
    calls = Calls(models)
    try:
        maps = batched.ground(images, concepts)
    finally:
        calls.close()
    # Distinct (image, concept): (a, cat), (a, red car), (b, cat), (odd, dog) — one
    # detector batch per image size; a is encoded once for both its concepts; SAM 2 sees
    # each of a, b, odd once, with the boxes of all their concepts.
    assert sorted(calls.detector_rows) == [1, 3]
    assert image_backbone.images_encoded - encoded_before == 3
    assert calls.segmenter_rows and sum(calls.segmenter_rows) <= 3
    one_at_a_time = Grounder(**settings, batch_size=1)
    reference: dict[tuple, np.ndarray] = {}
    for image, concept, got in zip(images, concepts, maps):
        key = (image.tobytes(), concept)
        if key not in reference:
            reference[key] = one_at_a_time.ground([image], [concept])[0]
        alone = reference[key]
        assert got.shape == alone.shape
        assert np.abs(got - alone).max() <= 1e-5, concept
    assert any(m.max() == pytest.approx(1.0) for m in maps)  # something was found
    # Text features are kept per prompt: asking known concepts encodes no text.
    rows_before = text.rows_encoded
    batched.ground([c, odd], ["cat", "red car"])
    assert text.rows_encoded == rows_before


def _pair(index, instruction, image):
    return Pair(f"p{index}", image, image[::-1].copy(), instruction)


@pytest.mark.parametrize(
    ("instruction", "action", "rows"),
    [
        ("add a hat on the person", "add", 1),
        ("remove the cat", "remove", 1),
        ("make it snowy", "global", 0),
        ("replace the cat with a dog", "replace", 2),
    ],
)
def test_only_the_maps_acsf_reads_are_grounded(settings, instruction, action, rows):
    branch = InstructionBranch.from_config(dict(parser="rules", **settings))
    image = _images(2, 1)[0]
    calls = Calls(branch.grounder.models)
    try:
        result = branch([_pair(0, instruction, image)])[0]
    finally:
        calls.close()
    assert result.edit.action == action
    assert sum(calls.detector_rows) == rows
    uses_original, uses_edited = GROUNDED_MAPS[action]
    if not uses_original:
        assert np.all(result.original_map == np.float32(branch.config.epsilon))
    if not uses_edited:
        assert np.all(result.edited_map == np.float32(branch.config.epsilon))
    assert branch.precisions == {"grounding": "fp32"}


def test_every_action_says_which_maps_it_reads():
    assert set(GROUNDED_MAPS) == set(ACTIONS)


def test_precision_is_chosen_and_reported(settings, monkeypatch):
    from sigma_iml import device as device_module

    grounder = Grounder(**{**settings, "precision": "bf16"})
    assert grounder.precision == "bf16"
    maps = grounder.ground(_images(3, 1), ["cat"])
    assert maps[0].dtype == np.float32
    # Frozen weights in bf16 (no per-call recast), except GroundingDINO's precision-
    # sensitive heads; the maps stay float32.
    models = grounder.models
    assert {p.dtype for p in models.segmenter.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in models.detector.model.backbone.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in models.detector.bbox_embed.parameters()} == {torch.float32}
    cpu = torch.device("cpu")
    assert device_module.weights_dtype(cpu, "bf16") == torch.bfloat16
    assert device_module.weights_dtype(cpu, "fp32") == torch.float32
    # auto: float32 on a CPU without bf16 matrix units, bf16 on one with them.
    monkeypatch.setattr(device_module, "cpu_has_bf16_matmul", lambda: False)
    assert device_module.autocast_dtype(cpu, "auto") is None
    assert device_module.weights_dtype(cpu, "auto") == torch.float32
    monkeypatch.setattr(device_module, "cpu_has_bf16_matmul", lambda: True)
    assert device_module.autocast_dtype(cpu, "auto") == torch.bfloat16
    assert device_module.weights_dtype(cpu, "auto") == torch.bfloat16
    with pytest.raises(ConfigError):
        Grounder(**{**settings, "precision": "fp8"})
    with pytest.raises(ConfigError):
        InstructionBranch.from_config(dict(parser="rules", grounding=False, precision="half"))


def test_an_attribute_change_with_one_concept_grounds_it_on_both_images():
    """("null", "red car", attribute change) used to fuse to ε everywhere (A_o = ε·1);
    the named object is on both images, so both maps ground it (issue 11)."""
    import numpy as np

    from sigma_iml.instruction.branch import grounded_concepts
    from sigma_iml.instruction.edit_tuple import EditTuple
    from sigma_iml.instruction.fusion import fuse

    assert grounded_concepts(EditTuple("null", "red car", "attribute change")) == (
        "red car",
        "red car",
    )
    assert grounded_concepts(EditTuple("car", "null", "attribute change")) == ("car", "car")
    assert grounded_concepts(EditTuple("cat", "dog", "replace")) == ("cat", "dog")
    assert grounded_concepts(EditTuple("cat", "null", "remove")) == ("cat", None)
    assert grounded_concepts(EditTuple("null", "hat", "add")) == (None, "hat")
    assert grounded_concepts(EditTuple("null", "null", "global")) == (None, None)
    # With both maps grounded, the fused prior marks the object instead of ε everywhere.
    car = np.full((4, 4), 0.01, dtype=np.float32)
    car[1:3, 1:3] = 1.0
    assert fuse("attribute change", car, car).max() == 1.0
