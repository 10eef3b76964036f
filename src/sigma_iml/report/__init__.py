"""``sigma-iml report``: one self-contained HTML page for a benchmark, evaluation or
annotation run (tables, robustness plots, a sortable, filterable, paged gallery)."""

from __future__ import annotations

import os
from pathlib import Path

from ..data.io import atomic_write_text
from .html import relative_base, render_html
from .runs import ReportData, load_run

REPORT_NAME = "report.html"


def build_report(
    run: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    max_thumbnails: int | None = None,
) -> Path:
    """Write the report of the run at ``run`` to ``out`` (default: ``report.html`` in the
    run folder) and return its path. Images are linked relative to the page, so keep the
    page and the run folder together (or regenerate the page after moving either)."""
    report = load_run(run, max_thumbnails=max_thumbnails)
    page = Path(out) if out is not None else report.run_dir / REPORT_NAME
    page.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(page, render_html(report, relative_base(report.run_dir, page)))
    return page


__all__ = ["REPORT_NAME", "ReportData", "build_report", "load_run"]
