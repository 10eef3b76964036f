"""The annotator and the registered ``sigma`` method on the tiny offline weights."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from sigma_iml.data.pair import Pair
from sigma_iml.inference.annotator import Annotation, Annotator
from sigma_iml.methods import METHODS, Prediction
from sigma_iml.testing import write_tiny_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def annotator(weights):
    # float32 everywhere: the exact comparisons below must not depend on whether this CPU
    # has bf16 units ("auto" is tested in test_precision_comes_from_the_device_module).
    return Annotator.from_checkpoint(
        weights["sigma"], device="cpu", batch_size=2, local_files_only=True, precision="fp32"
    )


def image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_masks_and_probabilities_are_at_the_edited_size(annotator, tmp_path):
    path_o, path_e = tmp_path / "o.png", tmp_path / "e.png"
    Image.fromarray(image(48, 64, 1)).save(path_o)
    Image.fromarray(image(48, 64, 2)).save(path_e)
    pairs = [
        (image(90, 50, 3), image(90, 50, 4)),  # non-square arrays
        # tiny PIL; no instruction: a bare network refuses one (test_python_api.py)
        (Image.fromarray(image(7, 10, 5)), Image.fromarray(image(7, 10, 6)), None),
        (path_o, path_e),  # paths
        Pair(id="big", original=image(900, 1200, 7), edited=image(900, 1200, 8)),  # large
        (image(30, 40, 9), image(60, 80, 10)),  # original of another size than the edited
    ]
    results = annotator.annotate(pairs)
    expected = [(90, 50), (7, 10), (48, 64), (900, 1200), (60, 80)]
    assert [r.probability.shape for r in results] == expected
    assert [r.mask.shape for r in results] == expected
    for result in results:
        assert isinstance(result, Annotation)
        assert result.probability.dtype == np.float32 and result.mask.dtype == bool
        assert 0.0 <= result.probability.min() <= result.probability.max() <= 1.0
        np.testing.assert_array_equal(result.mask, result.probability > 0.5)
        assert result.intermediates == {}
    assert results[3].id == "big"


def test_intermediates_on_request(annotator):
    (result,) = annotator.annotate([(image(40, 56, 1), image(40, 56, 2))], intermediates=True)
    assert set(result.intermediates) == {
        "difference/block2",
        "difference/block5",
        "difference/block11",
        "visual_evidence",
        "consensus",
        "instruction_prior",
    }
    for name, array in result.intermediates.items():
        assert array.shape == (40, 56), name
        assert array.dtype == np.float32
    np.testing.assert_allclose(result.intermediates["instruction_prior"], 0.01, rtol=1e-5)
    same = image(40, 56, 3)
    (unchanged,) = annotator.annotate([(same, same.copy())], intermediates=True)
    assert np.abs(unchanged.intermediates["difference/block11"]).max() < 1e-4
    assert result.intermediates["difference/block11"].max() > 1e-3


def test_batching_does_not_change_results(weights, annotator):
    pairs = [(image(32, 32, s), image(32, 32, s + 100)) for s in range(3)]
    one_by_one = Annotator.from_checkpoint(
        weights["sigma"], device="cpu", batch_size=1, local_files_only=True, precision="fp32"
    )
    batched = annotator.annotate(pairs)
    single = one_by_one.annotate(pairs)
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a.probability, b.probability, rtol=1e-4, atol=1e-5)


def test_priors_reach_the_model(annotator):
    original, edited = image(56, 56, 11), image(56, 56, 12)
    prior = np.zeros((28, 28), dtype=np.float32)
    prior[4:20, 4:20] = 1.0
    plain, guided = annotator.annotate(
        [(original, edited)] * 2, priors=[None, prior], intermediates=True
    )
    assert not np.allclose(plain.probability, guided.probability)
    assert guided.intermediates["instruction_prior"].max() > 0.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        annotator.annotate([(original, edited)], priors=[prior * 2])
    with pytest.raises(ValueError, match="priors for"):
        annotator.annotate([(original, edited)], priors=[None, None])


def test_no_global_torch_state_changes(weights):
    before = (
        torch.get_num_threads(),
        torch.get_default_dtype(),
        torch.is_autocast_enabled("cpu"),
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.is_grad_enabled(),
        torch.get_float32_matmul_precision(),
    )
    annotator = Annotator.from_checkpoint(weights["sigma"], device="auto", local_files_only=True)
    annotator.annotate([(image(20, 20, 1), image(20, 20, 2))])
    after = (
        torch.get_num_threads(),
        torch.get_default_dtype(),
        torch.is_autocast_enabled("cpu"),
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.is_grad_enabled(),
        torch.get_float32_matmul_precision(),
    )
    assert before == after
    from sigma_iml.device import cpu_has_bf16_matmul

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert annotator.device.type == expected
    bf16 = expected == "cuda" or cpu_has_bf16_matmul()
    assert annotator.autocast_dtype == (torch.bfloat16 if bf16 else None)
    # The annotator owns the net it loaded: its backbone is converted in place, no copy.
    assert annotator.backbone is annotator.net.backbone
    weights = {p.dtype for p in annotator.backbone.parameters()}
    assert weights == {torch.bfloat16 if bf16 else torch.float32}


def test_bad_inputs_are_reported(annotator):
    with pytest.raises(TypeError, match="Pair or a tuple"):
        annotator.annotate([image(10, 10, 1)])
    from sigma_iml.errors import ConfigError, ImageDecodeError

    with pytest.raises(ImageDecodeError):
        annotator.annotate([("/nonexistent/o.png", "/nonexistent/e.png")])
    with pytest.raises(ConfigError, match="batch_size"):
        Annotator(annotator.net, device="cpu", batch_size=0)


def test_precision_comes_from_the_device_module(annotator):
    from sigma_iml.device import cpu_has_bf16_matmul
    from sigma_iml.errors import ConfigError

    pair = [(image(40, 40, 5), image(40, 40, 6))]
    # "auto" on a CPU: bf16 only where the CPU multiplies bf16 matrices in hardware.
    auto = Annotator(annotator.net, device="cpu")
    assert auto.precision_name == ("bf16" if cpu_has_bf16_matmul() else "fp32")
    exact = Annotator(annotator.net, device="cpu", precision="fp32")
    bf16 = Annotator(annotator.net, device="cpu", precision="bf16")
    assert (exact.precision_name, bf16.precision_name) == ("fp32", "bf16")
    assert exact.autocast_dtype is None and bf16.autocast_dtype == torch.bfloat16
    # Under bf16 the frozen backbone runs with bf16 weights (autocast would recast them
    # at every call), as a copy: the shared net keeps its float32 weights.
    dtypes = lambda module: {p.dtype for p in module.parameters()}  # noqa: E731
    assert dtypes(bf16.backbone) == {torch.bfloat16}
    assert exact.backbone is annotator.net.backbone
    assert dtypes(annotator.net.backbone) == {torch.float32}
    reference = exact.annotate(pair)[0].probability
    approximate = bf16.annotate(pair)[0].probability
    assert approximate.dtype == np.float32 and approximate.shape == reference.shape
    difference = np.abs(approximate - reference)
    assert difference.max() > 0.0  # bf16 ran: its rounding shows
    assert difference.mean() < 0.01 and difference.max() < 0.25  # rounding, not another model
    with pytest.raises(ConfigError, match="precision"):
        Annotator(annotator.net, device="cpu", precision="half")


def test_registered_sigma_method(weights):
    import sigma_iml.inference.method  # noqa: F401  (registers "sigma")

    method = METHODS.build(
        f"sigma:checkpoint={weights['sigma']},batch_size=2,device=cpu,local_files_only=true,intermediates=true,"
        "instruction=false"
    )
    assert method.batch_size == 2
    assert method.params()["checkpoint"] == str(weights["sigma"])
    assert method.spec().startswith("sigma:checkpoint=")
    pairs = [
        Pair(id="a", original=image(30, 45, 1), edited=image(30, 45, 2), instruction="add a hat"),
        Pair(id="b", original=image(64, 16, 3), edited=image(64, 16, 4)),
    ]
    predictions = method.predict_batch(pairs)
    assert all(isinstance(p, Prediction) for p in predictions)
    assert [p.probability.shape for p in predictions] == [(30, 45), (64, 16)]
    assert predictions[0].probability.dtype == np.float32
    assert predictions[1].extras["intermediates"]["consensus"].shape == (64, 16)
    assert method.predict(pairs[0]).mask.shape == (30, 45)


def test_a_loaded_bf16_annotator_holds_one_backbone_in_bf16(weights):
    annotator = Annotator.from_checkpoint(
        weights["sigma"], device="cpu", precision="bf16", local_files_only=True
    )
    assert annotator.backbone is annotator.net.backbone  # converted in place, no copy
    assert {p.dtype for p in annotator.backbone.parameters()} == {torch.bfloat16}
    (result,) = annotator.annotate([(image(30, 30, 1), image(30, 30, 2))])
    assert result.probability.dtype == np.float32 and result.probability.shape == (30, 30)
