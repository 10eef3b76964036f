"""The one-pair Python API (README "Python API"): ``sigma_iml.Annotator.from_pretrained``
then ``annotator(original, edited, instruction)`` with PIL images, arrays or paths."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import sigma_iml
from sigma_iml.errors import ConfigError
from sigma_iml.testing import write_tiny_pipeline


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_pipeline(tmp_path_factory.mktemp("tiny"))


def _photo(seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_one_pair_from_pil_images_with_an_instruction(tiny, tmp_path):
    annotator = sigma_iml.Annotator.from_pretrained(tiny["sigma"], parser="rules", device="cpu")
    assert annotator.branch is not None
    original, edited = _photo(1), _photo(2)
    removed = annotator(original, edited, "remove the dog")
    assert removed.mask.shape == (40, 48) and removed.mask.dtype == bool
    assert removed.probability.shape == (40, 48) and removed.probability.dtype == np.float32
    assert removed.parsed_instruction == {
        "original_concept": "dog",
        "edited_concept": "null",
        "action": "remove",
    }
    # The instruction reaches the network: a global edit (uniform prior) and a local one
    # give different probabilities on the same images.
    global_edit = annotator(original, edited, "make it look like winter")
    assert global_edit.parsed_instruction["action"] == "global"
    assert not np.allclose(removed.probability, global_edit.probability)
    # Paths and arrays work too, and the batched form equals the one-pair calls.
    original.save(tmp_path / "o.png")
    batch = annotator.annotate(
        [(tmp_path / "o.png", np.asarray(edited), "remove the dog"), (original, edited)]
    )
    # With bf16 ("auto" on an AMX CPU) a batch of two runs other matmul kernels than a
    # batch of one: equal up to bf16 rounding (measured 0.0099 at most), not to 1e-4.
    tolerance = 1e-4 if annotator.precision_name == "fp32" else 0.03
    np.testing.assert_allclose(batch[0].probability, removed.probability, atol=tolerance)
    assert batch[1].parsed_instruction is None


def test_from_pretrained_takes_a_method_spec(tiny):
    spec = f"sigma:checkpoint={tiny['sigma']},parser=rules,grounding=false,device=cpu"
    annotator = sigma_iml.Annotator.from_pretrained(spec)
    assert annotator.branch is not None and annotator.branch.grounder is None
    result = annotator(_photo(3), _photo(4), "add a hat")
    assert result.parsed_instruction["action"] == "add"


def test_a_bare_network_refuses_an_instruction_it_would_ignore(tiny):
    annotator = sigma_iml.Annotator.from_checkpoint(tiny["sigma"], device="cpu")
    with pytest.raises(ConfigError, match="no instruction branch"):
        annotator(_photo(5), _photo(6), "remove the dog")
    assert annotator(_photo(5), _photo(6)).parsed_instruction is None
