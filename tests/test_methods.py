"""Every registered method round-trips through its spec: ``build_method(m.spec())`` is the
same method. The Ray engine rebuilds methods in its actors from ``spec()``, so a parameter
that ``params()`` drops is silently reset to its default there."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigma_iml.methods import METHODS, build_method, method_names
from sigma_iml.registry import Spec
from sigma_iml.testing import write_tiny_weights


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_weights(tmp_path_factory.mktemp("tiny"))


def _examples(tiny: dict[str, Path], tmp: Path) -> dict[str, str]:
    """For each registered method, a spec giving every parameter a value other than its
    default (``grounding=false``: detector and segmenter are named, never loaded)."""
    return {
        "pixdiff-fixed": "pixdiff-fixed:tau=0.1,reduce=mean,resolution=256",
        "pixdiff-morph": "pixdiff-morph:tau=0.15,kernel=3,reduce=mean,resolution=native",
        "pixdiff-otsu": "pixdiff-otsu:resolution=128",
        "sigma": (
            f"sigma:checkpoint={tiny['sigma']},batch_size=2,device=cpu,local_files_only=true,"
            "intermediates=true,instruction=true,precision=fp32,compile=true,parser=rules,"
            f"parser_model={tmp / 'qwen'},grounding=false,detector={tmp / 'gdino'},"
            f"segmenter={tmp / 'sam'},parse_cache={tmp / 'cache.sqlite'}"
        ),
    }


def test_every_registered_method_round_trips_through_its_spec(tiny, tmp_path):
    examples = _examples(tiny, tmp_path)
    assert set(method_names()) == set(examples), "add an example spec for each new method"
    for name, text in examples.items():
        spec = Spec.parse(text)
        # The example names every parameter, so none can be missed below.
        assert set(spec.params) == set(METHODS.parameters(name)), name
        method = build_method(text)
        params = method.params()
        assert set(params) == set(spec.params), f"{name}: params() drops or adds parameters"
        rebuilt = build_method(method.spec())
        assert type(rebuilt) is type(method)
        assert rebuilt.params() == params, name
        assert rebuilt.spec() == method.spec(), name
        # The given values survive, converted as the registry converts them.
        again = build_method(str(Spec(name, {k: str(v) for k, v in params.items()})))
        assert again.params() == params, name


def test_sigma_spec_keeps_what_the_ray_engine_needs(tiny, tmp_path):
    method = build_method(_examples(tiny, tmp_path)["sigma"])
    rebuilt = build_method(method.spec())
    assert rebuilt.local_files_only is True and rebuilt.intermediates is True
    assert rebuilt.annotator.precision_name == "fp32"
    assert rebuilt.instruction_config == method.instruction_config
    assert rebuilt.instruction_config.cache == str(tmp_path / "cache.sqlite")
    assert rebuilt.instruction_config.detector == str(tmp_path / "gdino")
    # Defaults are named too: the spec of a plain ``sigma:checkpoint=...`` rebuilds it.
    plain = build_method(f"sigma:checkpoint={tiny['sigma']},device=cpu,grounding=false")
    assert build_method(plain.spec()).params() == plain.params()
