"""``benchmarks/backbone.py`` and ``benchmarks/gpu.py`` on tiny sizes write every key the
performance targets are read from."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_backbone_benchmark_writes_the_target_keys(tmp_path):
    out = tmp_path / "backbone.json"
    _load("backbone").main(
        ["--tiny", "--image-size", "56", "--repeats", "1", "--peak-size", "128", "--json", str(out)]
    )
    result = json.loads(out.read_text())
    assert result["drb_cross_level_pool"] == 1  # the paper's head
    assert result["dtype"] in ("float32", "bfloat16")
    assert result["precision"] == ("bf16" if result["dtype"] == "bfloat16" else "fp32")
    for key in ("peak_gflops", "backbone_gflops", "pair_seconds", "fp32_pair_seconds"):
        assert result[key] > 0, key
    fraction = result["backbone_gflops"] / result["peak_gflops"]
    assert result["backbone_fraction_of_peak"] > 0
    assert abs(result["backbone_fraction_of_peak"] - fraction) < 1e-3 + 0.01 * fraction
    assert result["head_fraction_of_backbone"] > 0
    assert 0.5 <= result["mask_agreement_bf16_fp32"] <= 1.0
    assert result["variants"]["pair_two_backbone_calls"] > 0


def test_gpu_benchmark_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    _load("gpu").main(
        [
            "--device",
            "cpu",
            "--tiny",
            "--image-size",
            "28",
            "--batches",
            "1,2",
            "--repeats",
            "1",
            "--grounding-size",
            "48x32",
            "--json",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    assert result["batches"] == [1, 2] and result["drb_cross_level_pool"] == 1
    for batch in ("1", "2"):
        stage = result["stages"][batch]
        for key in (
            "backbone_pairs_per_second",
            "head_pairs_per_second",
            "grounding_pairs_per_second",
            "backbone_fraction_of_bf16_peak",
            "peak_memory_mib",
        ):
            assert stage[key] > 0, (batch, key)
    assert 0.5 <= result["mask_agreement_bf16_fp32"] <= 1.0
