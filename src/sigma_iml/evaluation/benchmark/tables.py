"""A benchmark run's results, and Table 1 built from them: methods as rows, per dataset
F1 and IoU (per-image means and micro) in %, and their average over the datasets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..evaluate import MethodResult
from ..robustness import RobustnessResult
from .config import BenchmarkConfig

METRICS = ("f1", "iou", "f1_micro", "iou_micro")


@dataclass
class BenchmarkRun:
    config: BenchmarkConfig
    results: list[MethodResult] = field(default_factory=list)
    robustness: list[RobustnessResult] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    #: Dataset key -> method key -> names of intermediate maps saved for the gallery.
    maps: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    seconds: float = 0.0


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def table_rows(run: BenchmarkRun) -> list[dict[str, Any]]:
    """Table 1's rows: per method, per dataset the four metrics in %, and the average
    over the datasets that were scored (``average_over`` says which)."""
    by_key = {(r.dataset, r.method): r.row() for r in run.results}
    rows = []
    for entry in run.config.methods:
        row: dict[str, Any] = {"method": entry.name, "spec": entry.spec, "datasets": {}}
        for dataset in run.config.datasets:
            result = by_key.get((dataset.name, entry.name))
            cell = {m: _percent(result[m]) if result else None for m in METRICS}
            cell["n"] = result["n"] if result else 0
            row["datasets"][dataset.name] = cell
        scored = [d for d, cell in row["datasets"].items() if cell["f1"] is not None]
        row["average"] = {
            m: round(float(np.mean([row["datasets"][d][m] for d in scored])), 2) if scored else None
            for m in METRICS
        }
        row["average_over"] = scored
        rows.append(row)
    return rows


def _cell(value: float | None) -> str:
    return (
        "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
    )


def markdown_table(run: BenchmarkRun, rows: list[dict[str, Any]]) -> str:
    names = [d.name for d in run.config.datasets]
    resolution = run.config.resolution
    lines = [
        f"# Benchmark — pixel F1 / IoU (%), per-image mean, at "
        f"{'native size' if resolution == 'native' else f'{resolution}x{resolution}'}",
        "",
        "| Method | "
        + " | ".join(f"{n} F1 | {n} IOU" for n in names)
        + " | Average F1 | Average IOU |",
        "|---|" + "---:|---:|" * (len(names) + 1),
    ]
    partial = False
    for row in rows:
        cells = []
        for name in names:
            cell = row["datasets"][name]
            cells += [_cell(cell["f1"]), _cell(cell["iou"])]
        mark = ""
        if row["average_over"] and len(row["average_over"]) < len(names):
            mark, partial = " †", True
        cells += [_cell(row["average"]["f1"]) + mark, _cell(row["average"]["iou"]) + mark]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    lines.append("")
    counts = ", ".join(
        f"{name} n={rows[0]['datasets'][name]['n']}" if rows else name for name in names
    )
    lines.append(
        f"Scored pairs: {counts}. Empty ground truths "
        f"{'included (scored 0, as IMDL-BenCo)' if run.config.include_empty else 'excluded'}."
    )
    if partial:
        lines.append("† averaged over the datasets that were scored only.")
    lines += ["", "## Micro (pixel counts summed over each dataset)", ""]
    lines.append("| Method | " + " | ".join(f"{n} F1 µ | {n} IOU µ" for n in names) + " |")
    lines.append("|---|" + "---:|---:|" * len(names))
    for row in rows:
        cells = []
        for name in names:
            cell = row["datasets"][name]
            cells += [_cell(cell["f1_micro"]), _cell(cell["iou_micro"])]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    if run.config.paper:
        lines += ["", "## The paper's numbers (Table 1), for comparison", ""]
        lines.append("| Method | " + " | ".join(f"{n} F1 | {n} IOU" for n in names) + " |")
        lines.append("|---|" + "---:|---:|" * len(names))
        for paper in run.config.paper:
            cells = []
            for name in names:
                pair = paper.scores.get(name)
                cells += [_cell(pair[0]), _cell(pair[1])] if pair else ["-", "-"]
            ours = f" (ours: {paper.method})" if paper.method else ""
            lines.append(f"| {paper.label}{ours} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
