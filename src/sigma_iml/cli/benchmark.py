"""``sigma-iml benchmark --config YAML``: the paper's Table 1 (and Fig. 4) for a config."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import SigmaError
from .common import console, fail, flag, literal, results_table
from .options import WeightsFolder


def register(app: typer.Typer) -> None:
    @app.command("benchmark")
    def benchmark_command(
        config: Path = typer.Option(
            ..., "--config", "-c", help="Benchmark YAML (see docs/benchmarking.md)."
        ),
        out: Path | None = typer.Option(
            None, "--out", help="Run folder (replaces the config's 'out')."
        ),
        limit: int | None = typer.Option(
            None, help="Use only the first N pairs of each dataset (replaces the config's 'limit')."
        ),
        dataset: list[str] = typer.Option(
            [], "--dataset", "-d", help="Run only this dataset of the config (repeatable)."
        ),
        save_predictions: bool | None = typer.Option(
            None,
            "--save-predictions/--no-save-predictions",
            help="Save thumbnails and predicted masks for the report gallery (default: the config's).",
        ),
        robustness: bool = flag(
            "--robustness/--no-robustness",
            "Run the config's robustness section, if any.",
            default=True,
        ),
        report: bool = flag("--report", "Also write RUN/report.html (as `sigma-iml report RUN`)."),
        weights: WeightsFolder = None,
    ) -> None:
        """Run every method of a config on every dataset; write Table 1 (markdown, CSV, JSON),
        per-image scores and, if configured, the robustness curves (Fig. 4)."""
        from ..evaluation.benchmark import load_config, run_benchmark, select_datasets
        from ..report.gallery import benchmark_gallery

        try:
            settings = load_config(config, out=out, limit=limit, save_predictions=save_predictions)
            settings = select_datasets(settings, dataset)
            if not robustness:
                settings = settings.replace(robustness=None)
            run = run_benchmark(
                settings,
                log=lambda message: console.print(message, markup=False, highlight=False),
                gallery=benchmark_gallery(settings),
            )
        except SigmaError as err:
            raise fail(err) from None
        rows = [{**result.row(), "method_spec": result.method} for result in run.results]
        resolution = settings.resolution
        console.print(
            results_table(
                rows,
                f"Pixel F1 / IoU (%) at {'native size' if resolution == 'native' else f'{resolution}x{resolution}'}",
            )
        )
        for result in run.results:
            if result.failures:
                console.print(
                    f"[yellow]{literal(result.dataset)} / {literal(result.method)}: "
                    f"{len(result.failures)} pair(s) skipped[/], e.g. "
                    f"{literal(result.failures[0]['error'])}",
                    highlight=False,
                )
        console.print(f"Table 1: {run.files['table_md']}", markup=False, highlight=False)
        if "robustness_json" in run.files:
            console.print(
                f"Robustness: {run.files['robustness_json']}", markup=False, highlight=False
            )
        if report:
            from ..report import build_report

            console.print(f"Report: {build_report(settings.out)}", markup=False, highlight=False)
