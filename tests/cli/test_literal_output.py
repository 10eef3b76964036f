"""Text from users' files (ids, paths, dataset names, errors) is printed as it is: rich
markup such as ``[/bold]`` in it neither crashes a command nor loses its results."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from sigma_iml.cli import app

runner = CliRunner()
MARKUP = "bad[/bold]id[red]"


def _dataset_with_markup(make_dataset) -> Path:
    """A manifest in a folder whose name holds markup, with one good pair and one pair
    (id with markup) whose edited image is missing."""
    manifest = make_dataset(n=1, name="data[/bold]set")
    row = {"id": MARKUP, "original": "original/pair000.png", "edited": "edited/[/x].png"}
    with manifest.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    return manifest


def test_evaluate_prints_markup_literally_and_writes_its_files(make_dataset, tmp_path):
    manifest = _dataset_with_markup(make_dataset)
    json_out, csv_out = tmp_path / "r.json", tmp_path / "r.csv"
    result = runner.invoke(
        app,
        ["evaluate", "--data", str(manifest), "-m", "pixdiff-otsu"]
        + ["--json", str(json_out), "--csv", str(csv_out)],
    )
    assert result.exit_code == 4, result.output
    assert MARKUP in result.output and "data[/bold]set" in result.output
    assert json.loads(json_out.read_text())["results"][0]["n"] == 1
    assert csv_out.is_file()


def test_annotate_prints_markup_literally(make_dataset, tmp_path):
    manifest = _dataset_with_markup(make_dataset)
    out = tmp_path / "run[/bold]"
    result = runner.invoke(
        app, ["annotate", "--data", str(manifest), "--method", "pixdiff-otsu", "--out", str(out)]
    )
    assert result.exit_code == 4, result.output
    assert MARKUP in result.output and "done 1, failed 1" in result.output
    assert str(out) in result.output.replace("\n", "")


def test_benchmark_prints_markup_literally(make_dataset, tmp_path):
    manifest = _dataset_with_markup(make_dataset)
    config = tmp_path / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "out": str(tmp_path / "bench[/bold]"),
                "resolution": 32,
                "datasets": [{"name": "Set[/b]", "format": "manifest", "path": str(manifest)}],
                "methods": ["pixdiff-otsu"],
            }
        )
    )
    result = runner.invoke(app, ["benchmark", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert MARKUP in result.output and "Set[/b]" in result.output


def test_an_error_holding_markup_is_printed_literally(tmp_path):
    missing = tmp_path / "no[/bold]where.jsonl"
    result = runner.invoke(
        app,
        ["annotate", "--data", str(missing), "--method", "pixdiff-otsu", "--out", str(tmp_path)],
    )
    assert result.exit_code == 3 and "MarkupError" not in repr(result.exception)
    assert "no[/bold]where.jsonl" in result.output.replace("\n", "")
