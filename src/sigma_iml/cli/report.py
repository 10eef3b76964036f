"""``sigma-iml report RUN``: one self-contained HTML page for a run."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import SigmaError
from .common import console, fail


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        run: Path = typer.Argument(
            ..., help="A benchmark or annotation run folder, or an `evaluate --json` file."
        ),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Where to write the page (default: RUN/report.html)."
        ),
        max_thumbnails: int | None = typer.Option(
            None,
            "--max-thumbnails",
            help="Annotation runs: make gallery images for at most N records (default: all).",
        ),
    ) -> None:
        """Build an HTML report: results table, robustness plots, and a gallery of pairs that
        sorts, filters and pages by score (F1, or quality for annotation runs)."""
        from ..report import build_report

        try:
            page = build_report(run, out, max_thumbnails=max_thumbnails)
        except SigmaError as err:
            raise fail(err) from None
        console.print(f"Report: {page}", markup=False, highlight=False)
