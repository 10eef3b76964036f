"""``sigma-iml benchmark --config``: Table 1 from a YAML, on tiny benchmark copies."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from PIL import Image
from typer.testing import CliRunner

from sigma_iml.cli import benchmark as benchmark_cli
from sigma_iml.data.readers import open_dataset
from sigma_iml.errors import ConfigError
from sigma_iml.evaluation.benchmark import load_config, run_benchmark
from sigma_iml.evaluation.evaluate import evaluate
from sigma_iml.methods import build_method

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "benchmark_fixtures", REPO / "tests" / "data" / "formats" / "benchmark_fixtures.py"
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    benchmark_cli.register(app)
    return app


def _config(tmp_path: Path, **changes) -> Path:
    fixtures.make_cocoglide(tmp_path / "CocoGlide")
    fixtures.make_magicbrush(tmp_path / "MagicBrush")
    config = {
        "out": str(tmp_path / "run"),
        "resolution": 32,
        "datasets": [
            {"name": "CoCoGlide", "format": "cocoglide", "path": str(tmp_path / "CocoGlide")},
            {
                "name": "MagicBrush",
                "format": "magicbrush",
                "path": str(tmp_path / "MagicBrush"),
                "split": "dev",
            },
        ],
        "methods": [
            "pixdiff-otsu",
            {"spec": "pixdiff-fixed:tau=0.05", "label": "Fixed 0.05"},
        ],
        "paper": [
            {
                "label": "Otsu (paper)",
                "method": "pixdiff-otsu",
                "scores": {"CoCoGlide": [62.4, 46.54]},
            }
        ],
        **changes,
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def test_writes_table1_with_both_reductions_matching_evaluate(tmp_path):
    config = _config(tmp_path)
    result = runner.invoke(_app(), ["benchmark", "--config", str(config)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    data = json.loads((run / "results.json").read_text())
    assert [d["name"] for d in data["datasets"]] == ["CoCoGlide", "MagicBrush"]

    # the same numbers as evaluate() on each dataset, per-image mean and micro
    methods = [build_method("pixdiff-otsu"), build_method("pixdiff-fixed:tau=0.05")]
    cocoglide = evaluate(
        open_dataset(tmp_path / "CocoGlide", format="cocoglide"), methods, resolution=32
    )
    rows = {(r["dataset"], r["method"]): r for r in data["results"]}
    for label, expected in zip(["pixdiff-otsu", "Fixed 0.05"], cocoglide):
        got = rows[("CoCoGlide", label)]
        assert got["n"] == 3 and got["n_failed"] == 2  # the fixture's two bad rows
        assert got["f1"] == pytest.approx(expected.scores.f1("imagewise"))
        assert got["f1_micro"] == pytest.approx(expected.scores.f1("micro"))
        assert got["iou_micro"] == pytest.approx(expected.scores.iou("micro"))
    assert rows[("MagicBrush", "Fixed 0.05")]["n"] == 4

    # Table 1: methods as rows, F1/IOU per dataset in %, average over the datasets
    table = {row["method"]: row for row in data["table"]}
    fixed = table["Fixed 0.05"]
    cells = fixed["datasets"]
    assert cells["CoCoGlide"]["f1"] == round(100 * rows[("CoCoGlide", "Fixed 0.05")]["f1"], 2)
    assert fixed["average"]["f1"] == pytest.approx(
        (cells["CoCoGlide"]["f1"] + cells["MagicBrush"]["f1"]) / 2, abs=0.01
    )
    markdown = (run / "table.md").read_text()
    assert (
        "| Method | CoCoGlide F1 | CoCoGlide IOU | MagicBrush F1 | MagicBrush IOU | Average F1 | Average IOU |"
        in markdown
    )
    assert (
        f"| Fixed 0.05 | {cells['CoCoGlide']['f1']:.2f} | {cells['CoCoGlide']['iou']:.2f} |"
        in markdown
    )
    assert "| Otsu (paper) (ours: pixdiff-otsu) | 62.40 | 46.54 | - | - |" in markdown
    with (run / "table.csv").open() as handle:
        wide = list(csv.DictReader(handle))
    assert [r["method"] for r in wide] == ["pixdiff-otsu", "Fixed 0.05"]
    assert float(wide[1]["MagicBrush f1_micro"]) == round(
        100 * rows[("MagicBrush", "Fixed 0.05")]["f1_micro"], 2
    )

    with (run / "per_image.csv").open() as handle:
        per_image = list(csv.DictReader(handle))
    assert len(per_image) == 2 * (3 + 4)
    mean = (
        sum(
            float(r["f1"])
            for r in per_image
            if r["dataset"] == "CoCoGlide" and r["method"] == "pixdiff-otsu"
        )
        / 3
    )
    assert mean == pytest.approx(rows[("CoCoGlide", "pixdiff-otsu")]["f1"])
    assert yaml.safe_load((run / "config.yaml").read_text())["resolution"] == 32
    assert not (run / "predictions").exists()  # not asked for


def test_saved_predictions_and_thumbnails_are_small(tmp_path):
    config = _config(tmp_path, save_predictions=True, thumbnail_size=24, resolution=64)
    result = runner.invoke(_app(), ["benchmark", "--config", str(config), "--dataset", "CoCoGlide"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    stem = "cocoglide_0001_563758"
    for path in (
        run / "thumbnails" / "CoCoGlide" / f"{stem}.original.jpg",
        run / "thumbnails" / "CoCoGlide" / f"{stem}.edited.jpg",
        run / "thumbnails" / "CoCoGlide" / f"{stem}.gt.png",
        run / "predictions" / "CoCoGlide" / "pixdiff-otsu" / f"{stem}.png",
        run / "predictions" / "CoCoGlide" / "pixdiff-otsu" / f"{stem}.overlay.jpg",
    ):
        with Image.open(path) as image:
            assert max(image.size) <= 24, path
    with Image.open(run / "predictions" / "CoCoGlide" / "pixdiff-otsu" / f"{stem}.png") as mask:
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
    data = json.loads((run / "results.json").read_text())
    assert [d["name"] for d in data["datasets"]] == ["CoCoGlide"]  # --dataset kept one
    assert data["gallery"]["saved"] is True


def test_saving_predictions_needs_the_gallery_saver_passed_in(tmp_path):
    # Evaluation sits below the report: the caller hands in what writes the gallery.
    config = load_config(_config(tmp_path, save_predictions=True))
    with pytest.raises(ConfigError, match="gallery saver"):
        run_benchmark(config)
    assert not (tmp_path / "run").exists()


def test_robustness_section_writes_fig4_json(tmp_path):
    config = _config(
        tmp_path,
        robustness={
            "datasets": ["CoCoGlide"],
            "methods": ["Fixed 0.05"],
            "jpeg": [50],
            "noise": [],
            "blur": [5],
        },
    )
    result = runner.invoke(_app(), ["benchmark", "--config", str(config)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "run" / "robustness" / "robustness.json").read_text())
    [dataset] = data["datasets"]
    assert dataset["dataset"] == "CoCoGlide" and dataset["target"] == "edited"
    assert [(p["perturbation"], p["levels"]) for p in dataset["panels"]] == [
        ("jpeg", [50]),
        ("blur", [5]),
    ]
    assert [s["method"] for s in dataset["panels"][0]["series"]] == ["Fixed 0.05"]
    assert dataset["panels"][0]["series"][0]["n"] == [3]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metods": ["pixdiff-otsu"]}, "metods"),
        ({"methods": ["pixdiff-otsu", "pixdiff-otsu"]}, "unique"),
        ({"resolution": 0}, "resolution"),
        (
            {"datasets": [{"name": "x", "format": "cocoglide", "path": "/nope", "qualty": 1}]},
            "qualty",
        ),
        ({"datasets": [{"name": "x", "format": "coco", "path": "/nope"}]}, "unknown format"),
        ({"robustness": {"datasets": ["Nope"]}}, "Nope"),
        ({"robustness": {"blur": [4]}}, "odd"),
    ],
)
def test_config_mistakes_are_named(tmp_path, change, message):
    config = _config(tmp_path, **change)
    result = runner.invoke(_app(), ["benchmark", "--config", str(config)])
    assert result.exit_code == 2
    assert message in result.output.replace("\n", "")


def test_missing_dataset_paths_fail_before_anything_runs(tmp_path):
    config = _config(tmp_path)
    result = runner.invoke(
        _app(), ["benchmark", "--config", str(config), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 0
    broken = yaml.safe_load(config.read_text())
    broken["datasets"][1]["path"] = str(tmp_path / "missing")
    config.write_text(yaml.safe_dump(broken))
    result = runner.invoke(
        _app(), ["benchmark", "--config", str(config), "--out", str(tmp_path / "y")]
    )
    assert result.exit_code == 2 and "MagicBrush" in result.output
    assert not (tmp_path / "y").exists()


def test_paper_table1_config_is_valid_and_lists_the_five_benchmarks():
    config = load_config(REPO / "configs" / "benchmark" / "paper-table1.yaml")
    assert [d.format for d in config.datasets] == [
        "cocoglide",
        "autosplice",
        "magicbrush",
        "deal300k",
        "opensdi",
    ]
    assert len(config.paper) == 10
    assert {row.method for row in config.paper if row.method} <= {m.name for m in config.methods}
    with pytest.raises(ConfigError, match="no dataset named"):
        from sigma_iml.evaluation.benchmark import select_datasets

        select_datasets(config, ["Nope"])


def test_cocoglide_dev_config_runs(cocoglide_dev, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the config's paths are relative to the repository root
    result = runner.invoke(
        _app(),
        [
            "benchmark",
            "--config",
            "configs/benchmark/cocoglide-dev.yaml",
            "--out",
            str(tmp_path / "dev"),
            "--limit",
            "12",
            "--no-robustness",
            "--no-save-predictions",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "dev" / "results.json").read_text())
    rows = {r["method"]: r for r in data["results"]}
    assert len(rows) == 6 and all(r["n"] == 12 for r in rows.values())
    # tau=0.05 is the best pixel baseline on CoCoGlide, as in the paper
    assert rows["pixdiff-fixed:tau=0.05"]["f1"] == max(r["f1"] for r in rows.values())
    assert rows["pixdiff-fixed:tau=0.05"]["f1"] > 0.85
