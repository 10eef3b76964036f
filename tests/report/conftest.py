"""A small benchmark run with saved predictions and a robustness study, for report tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sigma_iml.evaluation.benchmark import BenchmarkConfig, run_benchmark
from sigma_iml.report.gallery import benchmark_gallery


@pytest.fixture
def benchmark_run(make_dataset, tmp_path) -> Path:
    """Two manifest datasets (6 and 3 pairs), two methods, predictions saved, robustness."""
    first = make_dataset(n=6, seed=1, size=(56, 40), name="alpha")
    second = make_dataset(n=3, seed=2, size=(40, 40), name="beta")
    config = BenchmarkConfig.model_validate(
        {
            "out": str(tmp_path / "run"),
            "resolution": 48,
            "save_predictions": True,
            "datasets": [
                {"name": "Alpha", "format": "manifest", "path": str(first)},
                {"name": "Beta", "format": "manifest", "path": str(second)},
            ],
            "methods": ["pixdiff-otsu", {"spec": "pixdiff-fixed:tau=0.3", "label": "Fixed 0.3"}],
            "robustness": {"datasets": ["Beta"], "jpeg": [60], "noise": [0.01], "blur": [5]},
        }
    )
    run_benchmark(config, gallery=benchmark_gallery(config))
    return tmp_path / "run"


def gallery_data(page: str) -> dict:
    start = page.index('<script id="gallery-data" type="application/json">')
    start = page.index(">", start) + 1
    return json.loads(page[start : page.index("</script>", start)])
