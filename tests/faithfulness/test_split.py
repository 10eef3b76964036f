"""The split of a change mask by an intent region, and the intent sources."""

from __future__ import annotations

import numpy as np
import pytest

from sigma_iml.data.pair import Pair
from sigma_iml.errors import ConfigError, IntentError
from sigma_iml.faithfulness import (
    FaithfulnessAnalysis,
    FaithfulnessSettings,
    binarise_intent_map,
    mask_intent,
    split,
)
from sigma_iml.faithfulness.intent import GroundingIntent
from sigma_iml.methods import Prediction


def _box(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_split_separates_intended_change_side_effect_and_not_executed():
    shape = (100, 100)
    intent = _box(shape, 10, 40, 10, 40)  # 900 px asked for
    change = _box(shape, 10, 40, 10, 25) | _box(
        shape, 70, 90, 70, 90
    )  # half done, + 400 px elsewhere
    change[41, 41] = True  # the editor's blending just past the intent: still intended
    result = split(change, intent, FaithfulnessSettings(dilation=3))
    assert result.intended.sum() == 450 + 1
    assert np.array_equal(result.side_effect, _box(shape, 70, 90, 70, 90))
    assert np.array_equal(result.not_executed, _box(shape, 10, 40, 25, 40))
    assert result.intent_coverage == 0.5
    assert result.side_effect_fraction == round(400 / 851, 6)
    assert result.side_effect_flag and not result.not_executed_flag
    assert not (result.intended & result.side_effect).any()


def test_small_side_effect_components_are_noise():
    shape = (100, 100)  # min_side_effect_area 0.0005 -> 5 px
    intent = _box(shape, 0, 50, 0, 50)
    change = intent.copy()
    change[80:82, 80:82] = True  # 4 px: dropped
    result = split(change, intent)
    assert not result.side_effect.any() and not result.side_effect_flag
    change[80:83, 80:83] = True  # 9 px: kept
    assert split(change, intent).side_effect.sum() == 9
    assert (
        split(change, intent, FaithfulnessSettings(min_side_effect_area=0.001)).side_effect.sum()
        == 0
    )


def test_empty_intent_makes_every_change_a_side_effect_and_nothing_missing():
    shape = (40, 40)
    change = _box(shape, 5, 20, 5, 20)
    result = split(change, np.zeros(shape, bool))
    assert result.intent_coverage is None
    assert not result.not_executed_flag and not result.not_executed.any()
    assert result.side_effect_fraction == 1.0 and result.side_effect_flag
    assert not result.intended.any()


def test_empty_change_is_an_intent_not_executed():
    shape = (40, 40)
    intent = _box(shape, 5, 20, 5, 20)
    result = split(np.zeros(shape, bool), intent)
    assert result.intent_coverage == 0.0 and result.not_executed_flag
    assert result.side_effect_fraction == 0.0 and not result.side_effect_flag
    assert np.array_equal(result.not_executed, intent)
    both_empty = split(np.zeros(shape, bool), np.zeros(shape, bool))
    assert both_empty.scores() == {
        "intent_coverage": None,
        "side_effect_fraction": 0.0,
        "side_effect": False,
        "not_executed": False,
    }


def test_all_change():
    shape = (50, 50)
    intent = _box(shape, 10, 20, 10, 20)
    result = split(np.ones(shape, bool), intent, FaithfulnessSettings(dilation=0))
    assert result.intent_coverage == 1.0 and not result.not_executed_flag
    assert result.side_effect_fraction == round((2500 - 100) / 2500, 6)
    whole = split(np.ones(shape, bool), np.ones(shape, bool))
    assert whole.side_effect_fraction == 0.0 and whole.intent_coverage == 1.0


def test_flag_thresholds_are_settings():
    shape = (50, 50)
    intent = _box(shape, 0, 10, 0, 10)
    change = _box(shape, 0, 10, 0, 1) | _box(shape, 30, 40, 30, 40)  # coverage 0.1
    strict = split(change, intent)
    assert strict.not_executed_flag and strict.side_effect_flag
    lenient = split(
        change, intent, FaithfulnessSettings(not_executed_flag=0.05, side_effect_flag=0.95)
    )
    assert not lenient.not_executed_flag and not lenient.side_effect_flag
    with pytest.raises(ConfigError, match="dilation"):
        FaithfulnessSettings.from_dict({"dilation": -1})
    with pytest.raises(ValueError, match="one size"):
        split(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def _pair(instruction="add a cat", intended=None):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    return Pair("p1", image, image.copy(), instruction, intended_mask=intended)


def test_mask_intent_is_a_named_error_without_an_intended_region():
    with pytest.raises(IntentError, match="'p1'.*no intended region"):
        mask_intent(_pair())
    region = _box((32, 48), 0, 5, 0, 5)
    assert np.array_equal(mask_intent(_pair(intended=region)), region)
    with pytest.raises(ConfigError, match="unknown intent"):
        FaithfulnessAnalysis("brush")


def test_binarised_intent_map_is_resized_to_the_image():
    small = np.zeros((4, 4), np.float32)
    small[:2, :2] = 1.0
    region = binarise_intent_map(small, (40, 20), 0.5)
    assert region.shape == (20, 40)
    assert region[:8, :18].all() and not region[12:, 22:].any()


def test_grounding_intent_runs_the_instruction_branch_for_pixel_methods():
    """A method without an instruction branch: the branch runs here (rules parser, no
    grounding models: every concept map is ε, below the threshold). A global edit asks
    for the whole image."""
    intent = GroundingIntent({"parser": "rules", "grounding": False, "device": "cpu"}, 0.5)
    local = intent(_pair("add a cat on the left"), Prediction(np.zeros((32, 48), np.float32)))
    assert local.shape == (32, 48) and not local.any()
    whole = intent(_pair("make it look like sunset"), Prediction(np.zeros((32, 48), np.float32)))
    assert whole.all()
    assert intent.__getstate__()["_branch"] is None  # Ray tasks build their own
