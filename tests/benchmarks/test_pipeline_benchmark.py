"""``benchmarks/pipeline.py`` end to end on the tiny models: every stage is timed and the
pipeline is compared with their sum."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("pipeline_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_pipeline_benchmark_reports_every_stage_and_the_overhead(tmp_path):
    benchmark = _load_benchmark()
    out = tmp_path / "pipeline.json"
    models = tmp_path / "models"
    benchmark.main(
        ["--tiny", "--size", "96x64", "--repeats", "2", "--keep", str(models), "--json", str(out)]
    )
    result = json.loads(out.read_text())
    for stage in benchmark.STAGES:
        assert result["stages"][stage] >= 0.0, stage
        assert len(result["samples"][stage]) >= 2, stage
    assert result["stages"]["parser_llm"] > result["stages"]["parser_cache_hit"]
    expected_sum = sum(result["stages"][s] for s in result["pipeline_stages"])
    assert abs(result["stage_sum_seconds"] - expected_sum) < 1e-9
    assert result["pipeline_seconds_per_pair"] > 0.0
    assert result["overhead"] == result["pipeline_seconds_per_pair"] / expected_sum - 1.0
    assert (
        result["pipeline_over_sum_of_stages"] == result["pipeline_seconds_per_pair"] / expected_sum
    )
    ratio = result["stages"]["grounding"] / result["stages"]["backbone"]
    assert result["grounding_over_backbone"] == ratio
    assert result["precision"]["branch"]["grounding"] in ("bf16", "fp32")
    assert result["llm"]["prompt_tokens"] > 0 and result["llm"]["new_tokens"] > 1
    assert len(result["load_average"]["start"]) == 3
    # --keep: the models stay and a second run reuses them.
    assert (models / benchmark.COMPLETE_MARKER).is_file()
    assert benchmark.prepare_models(models, tiny=True)["reused"] is True
