"""The ``sigma`` method end to end offline: instruction branch (tiny Qwen2, GroundingDINO,
SAM 2 through their real classes) feeding the network (tiny DINOv2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigma_iml.data.pair import Pair
from sigma_iml.methods import build_method
from sigma_iml.models.checkpoint import instruction_settings
from sigma_iml.testing import write_tiny_pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return write_tiny_pipeline(tmp_path_factory.mktemp("tiny-pipeline"), seed=0)


def _pairs() -> list[Pair]:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    edited = original.copy()
    edited[10:30, 20:40] = 255 - edited[10:30, 20:40]
    return [
        Pair(id="a", original=original, edited=edited, instruction="remove the cat"),
        Pair(id="b", original=original, edited=edited, instruction=None),
    ]


def test_checkpoint_names_its_instruction_models(pipeline):
    settings = instruction_settings(pipeline["sigma"])
    assert settings["parser"] == "llm" and settings["local_files_only"] is True
    assert settings["parser_model"] == str(pipeline["qwen2"].resolve())
    assert settings["detector"] == str(pipeline["grounding-dino"].resolve())
    assert settings["segmenter"] == str(pipeline["sam2"].resolve())


def test_sigma_runs_parse_ground_fuse_then_the_network(pipeline):
    method = build_method(f"sigma:checkpoint={pipeline['sigma']},device=cpu,intermediates=true")
    predictions = method.predict_batch(_pairs())
    first, second = predictions
    assert first.probability.shape == (40, 56) and first.probability.dtype == np.float32
    parsed = first.extras["parsed_instruction"]
    # The tiny LLM writes garbage: the rule parser's answer is used and the fallback recorded.
    assert parsed["method"] == "rules-fallback" and parsed["fallback"]
    assert (parsed["original_concept"], parsed["edited_concept"], parsed["action"]) == (
        "cat",
        "null",
        "remove",
    )
    maps = first.extras["intermediates"]
    for name in ("concept_original", "concept_edited", "intent", "consensus", "visual_evidence"):
        assert name in maps, name
    eps = method.annotator.config.head.prior_epsilon
    assert maps["intent"].min() >= eps - 1e-6 and maps["intent"].max() <= 1.0
    # remove -> P = A_o (Eq. 8)
    np.testing.assert_allclose(maps["intent"], maps["concept_original"])
    # No instruction: the global tuple, whose prior is the uniform ε map.
    assert second.extras["parsed_instruction"]["action"] == "global"
    np.testing.assert_allclose(second.extras["intermediates"]["intent"], eps)
    assert {"parse", "ground", "fuse", "network"} <= set(first.extras["timings"])
    json.dumps(first.extras["parsed_instruction"])  # recordable as it is


def test_switching_the_branch_off_gives_the_uniform_prior_result(pipeline):
    pairs = _pairs()[1:]  # no instruction: with the branch on, the prior is ε as well
    on = build_method(f"sigma:checkpoint={pipeline['sigma']},device=cpu").predict_batch(pairs)[0]
    off = build_method(
        f"sigma:checkpoint={pipeline['sigma']},device=cpu,instruction=false"
    ).predict_batch(pairs)[0]
    assert "parsed_instruction" not in off.extras
    # Equal up to float rounding (the ε map is area-pooled on one path, filled on the other).
    np.testing.assert_allclose(on.probability, off.probability, atol=1e-5)
    rules = build_method(
        f"sigma:checkpoint={pipeline['sigma']},device=cpu,parser=rules,grounding=false"
    )
    assert rules.predict_batch(_pairs()[:1])[0].extras["parsed_instruction"]["method"] == "rules"


def test_annotate_saves_instruction_panels_and_the_report_shows_them(
    pipeline, make_dataset, tmp_path
):
    from PIL import Image

    from sigma_iml.annotation.runner import annotate
    from sigma_iml.data.formats.manifest import iter_manifest
    from sigma_iml.data.io import read_records
    from sigma_iml.report.runs import load_run

    manifest = make_dataset(n=2)
    out = tmp_path / "run"
    method = build_method(f"sigma:checkpoint={pipeline['sigma']},device=cpu,parser=rules")
    summary = annotate(
        iter_manifest(manifest), method, out, progress=False, save_intermediates=True
    )
    assert summary.done == 2
    # Records and summary.json say which precision ran, as resolved on this machine.
    import torch

    from sigma_iml.device import autocast_dtype, precision_name

    ran = precision_name(autocast_dtype(torch.device("cpu"), "auto"))
    assert summary.precision == {"network": ran, "grounding": ran}
    assert json.loads((out / "summary.json").read_text())["precision"] == summary.precision
    records = list(read_records(out / "shards" / "00000" / "records.jsonl"))
    for record in records:
        assert record["parsed_instruction"]["action"] == "remove"
        assert record["precision"] == {"network": ran, "grounding": ran}
        panel = Image.open(out / record["panel"])
        assert panel.width > panel.height  # a strip of tiles: images, concept maps, intent, mask
    report = load_run(out)
    assert any(image["label"] == "instruction branch" for image in report.gallery["pair_images"])
    # Without the flag no panel is written.
    plain = tmp_path / "plain"
    annotate(iter_manifest(manifest), method, plain, progress=False)
    assert all(
        r["panel"] is None for r in read_records(plain / "shards" / "00000" / "records.jsonl")
    )


def test_compiled_network_gives_the_eager_probabilities(pipeline, monkeypatch):
    """``compile=true`` (torch.compile of backbone and head, for bulk runs) changes speed,
    not results; the spec keeps it, so a rebuilt method compiles too. Dynamo traces the
    real modules here, with its ``eager`` backend: Inductor's code generation costs minutes
    on a CPU (benchmarks/backbone.py --compile times the real thing)."""
    import torch

    compiled_modules = []
    module_compile = torch.nn.Module.compile

    def compile_eagerly(module, *args, **kwargs):
        compiled_modules.append(type(module).__name__)
        module_compile(module, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eagerly)
    spec = f"sigma:checkpoint={pipeline['sigma']},device=cpu,parser=none"
    eager = build_method(spec).predict_batch(_pairs())
    method = build_method(spec + ",compile=true")
    compiled = method.predict_batch(_pairs())
    for a, b in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-4)
    assert compiled_modules == ["DinoBackbone", "SigmaHead"]
    assert method.params()["compile"] is True
    assert build_method(method.spec()).compile is True
