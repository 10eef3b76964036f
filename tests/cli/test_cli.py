"""The command line: version, help, evaluate's table and JSON, annotate."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sigma_iml import __version__
from sigma_iml.cli import app

runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("evaluate", "annotate", "methods"):
        assert command in result.output


def test_evaluate_prints_a_table_and_writes_json_and_csv(make_dataset, tmp_path):
    manifest = make_dataset(n=3)
    json_out, csv_out = tmp_path / "r.json", tmp_path / "r.csv"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(manifest),
            "-m",
            "pixdiff-fixed:tau=0.05",
            "-m",
            "pixdiff-otsu",
            "--json",
            str(json_out),
            "--csv",
            str(csv_out),
            "--per-image",
            str(tmp_path / "img.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "pixdiff-fixed:tau=0.05" in result.output and "518x518" in result.output
    rows = json.loads(json_out.read_text())["results"]
    assert [r["method"] for r in rows] == ["pixdiff-fixed", "pixdiff-otsu"]
    for row in rows:
        assert {"dataset", "method", "params", "n", "f1", "iou", "f1_micro", "iou_micro"} <= set(
            row
        )
        assert row["n"] == 3 and 0.0 <= row["f1"] <= 1.0 and 0.0 <= row["iou_micro"] <= 1.0
    assert rows[0]["params"]["tau"] == 0.05
    assert csv_out.read_text().splitlines()[0].startswith("dataset,method,")
    assert len((tmp_path / "img.csv").read_text().splitlines()) == 1 + 6


def test_evaluate_native_resolution_differs_from_518(make_dataset, tmp_path):
    manifest = make_dataset(n=2)
    outputs = {}
    for resolution in ("518", "native"):
        out = tmp_path / f"{resolution}.json"
        result = runner.invoke(
            app,
            [
                "evaluate",
                "--data",
                str(manifest),
                "-m",
                "pixdiff-otsu",
                "--resolution",
                resolution,
                "--json",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        outputs[resolution] = json.loads(out.read_text())["results"][0]
    assert outputs["518"]["resolution"] == "518" and outputs["native"]["resolution"] == "native"


def test_bad_method_spec_is_a_clean_error(make_dataset):
    manifest = make_dataset(n=1)
    result = runner.invoke(app, ["evaluate", "--data", str(manifest), "-m", "pixdiff-fixd"])
    assert result.exit_code == 2
    assert "Did you mean 'pixdiff-fixed'" in result.output


def test_annotate_command(make_dataset, tmp_path):
    manifest = make_dataset(n=2)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "annotate",
            "--data",
            str(manifest),
            "-m",
            "pixdiff-otsu",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "done 2, failed 0, skipped 0" in result.output
    assert (out / "imdlbenco.json").is_file() and len(
        list((out / "shards" / "00000" / "masks").glob("*.png"))
    ) == 2
    result = runner.invoke(
        app,
        [
            "annotate",
            "--data",
            str(manifest),
            "-m",
            "pixdiff-otsu",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert "done 0, failed 0, skipped 2" in result.output


def test_methods_command_lists_parameters():
    result = runner.invoke(app, ["methods"])
    assert (
        result.exit_code == 0 and "pixdiff-fixed" in result.output and "tau=0.05" in result.output
    )
