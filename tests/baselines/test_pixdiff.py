"""The paper's pixel-difference baselines and the method registry."""

from __future__ import annotations

import numpy as np
import pytest

from sigma_iml.data.pair import Pair
from sigma_iml.errors import ConfigError
from sigma_iml.methods import build_method, method_names


def _pair(original, edited, mask=None) -> Pair:
    return Pair(id="p", original=original, edited=edited, mask=mask)


def test_fixed_threshold_uses_the_max_over_channels():
    original = np.zeros((4, 6, 3), dtype=np.uint8)
    edited = original.copy()
    edited[0, 0] = (30, 0, 0)  # max diff 30/255 = 0.118 > 0.1, mean 0.039 < 0.1
    edited[1, 1] = (20, 20, 20)  # 0.078 < 0.1 either way
    method = build_method("pixdiff-fixed:tau=0.1,resolution=native")
    mask = method.predict(_pair(original, edited)).mask
    assert mask[0, 0] and not mask[1, 1] and mask.sum() == 1
    mean = build_method("pixdiff-fixed:tau=0.1,reduce=mean,resolution=native")
    assert not mean.predict(_pair(original, edited)).mask.any()


def test_prediction_is_at_the_edited_size_after_working_resolution():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    edited = original.copy()
    edited[10:30, 20:50] = 255 - edited[10:30, 20:50]
    for spec in ("pixdiff-fixed:tau=0.05", "pixdiff-morph:tau=0.05", "pixdiff-otsu"):
        prediction = build_method(spec).predict(_pair(original, edited))
        assert prediction.probability.shape == (37, 53)
        assert prediction.probability.dtype == np.float32
        inside = prediction.mask[12:28, 22:48].mean()
        outside = prediction.mask[:8].mean()
        assert inside > 0.9 and outside < 0.05, spec


def test_morph_removes_speckles_but_keeps_regions():
    original = np.zeros((40, 40, 3), dtype=np.uint8)
    edited = original.copy()
    edited[5:25, 5:25] = 200
    edited[33, 33] = 200  # an isolated changed pixel: noise to a morphological opening
    fixed = (
        build_method("pixdiff-fixed:tau=0.1,resolution=native")
        .predict(_pair(original, edited))
        .mask
    )
    morph = (
        build_method("pixdiff-morph:tau=0.1,resolution=native")
        .predict(_pair(original, edited))
        .mask
    )
    assert fixed[33, 33] and not morph[33, 33]
    assert morph[5:25, 5:25].all()


def test_otsu_separates_a_bimodal_difference():
    rng = np.random.default_rng(1)
    original = rng.integers(100, 110, (30, 30, 3), dtype=np.uint8)
    edited = original + rng.integers(0, 4, (30, 30, 3), dtype=np.uint8)  # low-level noise
    edited[:10] = np.clip(edited[:10].astype(int) + 90, 0, 255).astype(np.uint8)
    prediction = build_method("pixdiff-otsu:resolution=native").predict(_pair(original, edited))
    assert prediction.mask[:10].all() and not prediction.mask[10:].any()
    # Pixels above the threshold are edited: it sits between the noise (mean <= 3) and the edit.
    assert 3 / 255 <= prediction.extras["otsu_threshold"] < 90 / 255


def test_registry_lists_the_baselines_and_rejects_bad_specs():
    assert {"pixdiff-fixed", "pixdiff-morph", "pixdiff-otsu"} <= set(method_names())
    with pytest.raises(ConfigError, match="Did you mean 'pixdiff-fixed'"):
        build_method("pixdif-fixed")
    with pytest.raises(ConfigError, match="no parameter 'tua'. Did you mean 'tau'"):
        build_method("pixdiff-fixed:tua=0.1")
    with pytest.raises(ConfigError, match="cannot read 'abc': Input should be a valid number"):
        build_method("pixdiff-fixed:tau=abc")
    with pytest.raises(ConfigError, match="tau must be in"):
        build_method("pixdiff-fixed:tau=2")
    with pytest.raises(ConfigError, match="cannot read 'median': Input should be 'max' or 'mean'"):
        build_method("pixdiff-fixed:reduce=median")
    with pytest.raises(ConfigError, match="expected key=value"):
        build_method("pixdiff-fixed:tau")
    assert (
        build_method("pixdiff-fixed:tau=0.15").spec()
        == "pixdiff-fixed:tau=0.15,reduce=max,resolution=518"
    )


@pytest.mark.parametrize(
    "spec", ["pixdiff-fixed:resolution=999999", "pixdiff-otsu:resolution=8193"]
)
def test_a_working_resolution_beyond_memory_is_a_config_error(spec):
    """999999² float maps would need terabytes: refused before any pair is read."""
    with pytest.raises(ConfigError, match="largest working resolution"):
        build_method(spec)
    build_method(spec.split(":")[0] + ":resolution=8192")
