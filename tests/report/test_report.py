"""``sigma-iml report``: one self-contained page for benchmark, annotation and evaluate runs."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import typer
from typer.testing import CliRunner

from sigma_iml.annotation.runner import annotate
from sigma_iml.cli import report as report_cli
from sigma_iml.data.readers import open_dataset
from sigma_iml.methods import build_method
from sigma_iml.report import build_report

_spec = importlib.util.spec_from_file_location(
    "report_conftest", Path(__file__).with_name("conftest.py")
)
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
gallery_data = _helpers.gallery_data

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    report_cli.register(app)
    return app


def _fill(template: str, dataset: str, method: str, stem: str, map_name: str = "") -> str:
    return (
        template.replace("{d}", dataset)
        .replace("{m}", method)
        .replace("{s}", stem)
        .replace("{map}", map_name)
    )


def test_benchmark_report_has_tables_plot_and_a_gallery_whose_images_exist(benchmark_run):
    result = runner.invoke(_app(), ["report", str(benchmark_run)])
    assert result.exit_code == 0, result.output
    page_path = benchmark_run / "report.html"
    page = page_path.read_text()
    results = json.loads((benchmark_run / "results.json").read_text())

    # Table 1: every method row with its F1 for each dataset, as in table.md
    for row in results["table"]:
        assert f">{row['method']}</td>" in page
        assert f"{row['datasets']['Alpha']['f1']:.2f}" in page
    assert "id='results-table'" in page and "id='micro-table'" in page
    assert (
        "src='robustness/robustness.png'" in page
        and (benchmark_run / "robustness" / "robustness.png").is_file()
    )

    # self-contained: no network resource, only relative links
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link rel='stylesheet'" not in page

    data = gallery_data(page)
    assert [d["name"] for d in data["datasets"]] == ["Alpha", "Beta"]
    assert [m["label"] for m in data["methods"]] == ["pixdiff-otsu", "Fixed 0.3"]
    assert len(data["items"]) == 6 + 3
    alpha_f1 = {item[1]: item[5][0][0] for item in data["items"] if item[0] == 0}
    per_image = {
        r["id"]: float(r["f1"])
        for r in __import__("csv").DictReader((benchmark_run / "per_image.csv").open())
        if r["dataset"] == "Alpha" and r["method"] == "pixdiff-otsu"
    }
    assert alpha_f1 == per_image
    for item in data["items"]:
        dataset = data["datasets"][item[0]]["key"]
        assert item[4]  # images saved
        for spec in data["pair_images"]:
            assert (benchmark_run / _fill(spec["tpl"], dataset, "", item[2])).is_file()
        for method in data["methods"]:
            for spec in data["method_images"]:
                assert (
                    benchmark_run / _fill(spec["tpl"], dataset, method["key"], item[2])
                ).is_file()


def test_report_written_elsewhere_links_back_into_the_run(benchmark_run, tmp_path):
    page = build_report(benchmark_run, tmp_path / "pages" / "r.html")
    data = gallery_data(page.read_text())
    assert data["base"] == "../run/"
    assert "src='../run/robustness/robustness.png'" in page.read_text()


def test_ids_cannot_break_out_of_the_page(make_dataset, tmp_path):
    manifest = make_dataset(n=2)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[0]["id"] = "</script><img src=x onerror=alert(1)>"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from sigma_iml.evaluation.benchmark import BenchmarkConfig, run_benchmark

    config = BenchmarkConfig.model_validate(
        {
            "out": str(tmp_path / "run"),
            "resolution": 32,
            "datasets": [{"name": "d", "format": "manifest", "path": str(manifest)}],
            "methods": ["pixdiff-otsu"],
        }
    )
    run_benchmark(config)
    page = build_report(tmp_path / "run").read_text()
    assert "<img src=x" not in page
    assert any(item[1] == rows[0]["id"] for item in gallery_data(page)["items"])


def _annotation_run(make_dataset, tmp_path) -> Path:
    manifest = make_dataset(n=5, size=(64, 48))
    out = tmp_path / "annotate"
    annotate(
        open_dataset(manifest),
        build_method("pixdiff-otsu"),
        out,
        save_probability=True,
        progress=False,
    )
    return out


def _all_records(out: Path) -> list[dict]:
    files = [out / "records.jsonl", *sorted(out.glob("shards/*/records.jsonl"))]
    return [json.loads(line) for f in files if f.is_file() for line in f.read_text().splitlines()]


def test_annotation_report_shows_the_runs_quality_scores(make_dataset, tmp_path):
    out = _annotation_run(make_dataset, tmp_path)
    records = _all_records(out)
    names = {
        f"quality.{k}"
        for r in records
        for k, v in (r.get("quality") or {}).items()
        if isinstance(v, (int, float))
    }
    data = gallery_data(build_report(out).read_text())
    assert data["kind"] == "annotation" and len(data["items"]) == 5
    assert set(data["scores"]) == names | {"F1", "IoU"}
    for item in data["items"]:
        assert item[4]
        for spec in data["pair_images"]:
            assert (out / _fill(spec["tpl"], "run", "run", item[2])).is_file()


def test_annotation_records_are_read_from_flat_and_sharded_layouts(make_dataset, tmp_path):
    out = _annotation_run(make_dataset, tmp_path)
    records = sorted(_all_records(out), key=lambda r: r["id"])
    for path in [out / "records.jsonl", *out.glob("shards/*/records.jsonl")]:
        path.unlink(missing_ok=True)
    # quality as a plain number or as a mapping with a "score"; records in both places
    for index, record in enumerate(records):
        record["quality"] = (
            0.9 - 0.1 * index
            if index % 2
            else {"score": 0.9 - 0.1 * index, "agreement": index / 10}
        )
    (out / "shards" / "00007").mkdir(parents=True, exist_ok=True)
    (out / "shards" / "00007" / "records.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records[:3])
    )
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[3:]))
    page = build_report(out).read_text()
    data = gallery_data(page)
    assert data["scores"] == ["quality", "quality.agreement", "F1", "IoU"]
    by_id = {item[1]: item for item in data["items"]}
    assert len(by_id) == 5
    assert by_id["pair001"][5][0][0] == 0.8 and by_id["pair000"][5][0][:2] == [0.9, 0.0]
    assert 0.0 < by_id["pair002"][5][0][2] <= 1.0  # F1 from the records' ground-truth counts
    assert "probability" in [spec["label"] for spec in data["pair_images"]]
    assert "mean quality" in page


def test_annotation_report_lists_failed_records_with_their_error(make_dataset, tmp_path):
    manifest = make_dataset(n=3)
    (manifest.parent / "edited" / "pair002.png").write_bytes(b"broken")
    out = tmp_path / "annotate"
    annotate(open_dataset(manifest), build_method("pixdiff-otsu"), out, progress=False)
    data = gallery_data(build_report(out).read_text())
    failed = [item for item in data["items"] if item[3] == "failed"]
    assert [item[1] for item in failed] == ["pair002"]
    assert not failed[0][4] and "edited image" in failed[0][6]


def test_evaluate_json_gives_a_table_only_page(make_dataset, tmp_path):
    from sigma_iml.cli import app

    manifest = make_dataset(n=2)
    out = tmp_path / "eval.json"
    assert (
        runner.invoke(
            app, ["evaluate", "--data", str(manifest), "-m", "pixdiff-otsu", "--json", str(out)]
        ).exit_code
        == 0
    )
    result = runner.invoke(_app(), ["report", str(out), "--out", str(tmp_path / "eval.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "eval.html").read_text()
    assert "pixdiff-otsu" in page and "gallery-data" not in page


def test_a_folder_that_is_no_run_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(_app(), ["report", str(tmp_path / "empty")])
    # 3: the input cannot be read (cli/common.py, EXIT_INPUT_ERROR)
    assert result.exit_code == 3 and "not a run folder" in " ".join(result.output.split())
