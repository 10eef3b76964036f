"""``sigma-iml finetune --config FILE``: fine-tune several detectors on one annotate run and
write the paper's Table 2 layout (docs/finetune.md).

The YAML, in the style of the ``benchmark`` configs::

    out: runs/table2
    run: runs/anyedit-sigma            # the annotate run to train on
    epochs: 10                         # defaults for every detector
    device: auto
    tests:
      - {name: CoCoGlide, format: cocoglide, path: /path/to/CocoGlide}
    detectors:
      - {label: PSCC-Net, model: pscc_net, model_args: {pretrain_path: /w/hrnet.pth},
         init_checkpoint: /w/pscc_public.pth}
    paper:                              # optional: Table 2 as printed, [F1, IoU] in %
      - {label: "PSCC-Net", before: {CoCoGlide: [50.85, 40.6]}, after: {CoCoGlide: [42.3, 31.45]}}

Each detector trains in ``out/<label>/`` (:func:`.runner.finetune`); ``out/table.md``,
``table.csv`` and ``table.json`` hold, per detector, the "before" row (its starting
weights: ``init_checkpoint``, the paper's "Public Weight") and the "after" row
("Finetune w/ SA"), F1 and IoU per test set and their average, and the gain in mean F1;
the last line is the mean gain over detectors (the paper's +18.34).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from ..config import ConfigModel, check_unique
from ..data.io import atomic_write_text, safe_filename
from .runner import FinetuneOptions, TestSet, final_scores, finetune


class DetectorEntry(ConfigModel):
    label: str = Field(min_length=1)
    model: str
    model_args: dict[str, Any] = Field(default_factory=dict)
    init_checkpoint: Path | None = None
    #: Per-detector overrides of :class:`.runner.FinetuneOptions` fields.
    options: dict[str, Any] = Field(default_factory=dict)


class PaperTable2Row(ConfigModel):
    label: str
    before: dict[str, tuple[float, float]] = Field(default_factory=dict)
    after: dict[str, tuple[float, float]] = Field(default_factory=dict)


class Table2Config(ConfigModel):
    out: Path
    run: Path
    tests: list[TestSet] = Field(min_length=1)
    detectors: list[DetectorEntry] = Field(min_length=1)
    epochs: int = Field(default=1, gt=0)
    device: str = "auto"
    min_quality: float | None = None
    limit: int | None = Field(default=None, gt=0)
    paper: list[PaperTable2Row] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Table2Config:
        check_unique(
            {
                "test name": [t.name for t in self.tests],
                "detector label": [d.label for d in self.detectors],
            }
        )
        return self


def load_table2_config(path: str | Path, **overrides: Any) -> Table2Config:
    return Table2Config.load_with_overrides(path, "finetune config", **overrides)


def _average(scores: dict[str, dict[str, float]], key: str) -> float:
    return sum(s[key] for s in scores.values()) / len(scores)


def table2_rows(results: dict[str, dict[str, Any]], tests: list[str]) -> dict[str, Any]:
    """Per detector: before/after ``{test: [F1, IoU]}`` in %, averages and the F1 gain;
    plus the mean gain over detectors."""
    rows = []
    for label, metrics in results.items():
        entry: dict[str, Any] = {"label": label}
        for row, scores in (("before", metrics["before"]), ("after", final_scores(metrics))):
            entry[row] = {t: [100 * scores[t]["f1"], 100 * scores[t]["iou"]] for t in tests}
            entry[row]["Average"] = [100 * _average(scores, "f1"), 100 * _average(scores, "iou")]
        entry["gain_f1"] = entry["after"]["Average"][0] - entry["before"]["Average"][0]
        rows.append(entry)
    mean_gain = sum(r["gain_f1"] for r in rows) / len(rows) if rows else None
    return {"tests": tests, "rows": rows, "mean_gain_f1": mean_gain}


def _markdown(table: dict[str, Any], paper: list[PaperTable2Row]) -> str:
    columns = [*table["tests"], "Average"]
    head = "| Method | Weights | " + " | ".join(f"{c} F1 | {c} IoU" for c in columns) + " | ΔF1 |"
    lines = [
        "Pixel F1 / IoU (%), IMDL-BenCo's PixelF1 / PixelIOU (threshold 0.5, mean over images).",
        "",
        head,
        "|" + "---|" * (2 + 2 * len(columns) + 1),
    ]

    def cells(scores: dict[str, list[float]]) -> str:
        return " | ".join(
            f"{scores[c][0]:.2f} | {scores[c][1]:.2f}" if c in scores else "- | -" for c in columns
        )

    for row in table["rows"]:
        lines.append(f"| {row['label']} | before | {cells(row['before'])} | |")
        lines.append(f"| | Finetune w/ SA | {cells(row['after'])} | {row['gain_f1']:+.2f} |")
    if table["mean_gain_f1"] is not None:
        lines += [
            "",
            f"Mean F1 gain over {len(table['rows'])} detectors: {table['mean_gain_f1']:+.2f}",
        ]
    if paper:
        lines += ["", "The paper's Table 2:", "", head, lines[3]]
        for row in paper:
            before = {k: list(v) for k, v in row.before.items()}
            after = {k: list(v) for k, v in row.after.items()}
            lines.append(f"| {row.label} (paper) | Public Weight | {cells(before)} | |")
            lines.append(f"| | Finetune w/ SA | {cells(after)} | |")
    return "\n".join(lines) + "\n"


def _csv(table: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["detector", "weights", "dataset", "f1", "iou"])
    for row in table["rows"]:
        for weights in ("before", "after"):
            for dataset, (f1, iou) in row[weights].items():
                writer.writerow([row["label"], weights, dataset, f"{f1:.4f}", f"{iou:.4f}"])
    return buffer.getvalue()


def run_table2(
    config: Table2Config, *, log: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Fine-tune every detector of ``config``; write and return the table."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    tests = [t if config.limit is None else t.replace(limit=config.limit) for t in config.tests]
    results: dict[str, dict[str, Any]] = {}
    for detector in config.detectors:
        options = FinetuneOptions.from_dict(
            {
                "model": detector.model,
                "epochs": config.epochs,
                "device": config.device,
                "min_quality": config.min_quality,
                "model_args": detector.model_args,
                "init_checkpoint": detector.init_checkpoint,
                **detector.options,
            },
            where=f"detector {detector.label!r}",
        )
        log(f"fine-tuning {detector.label} ({detector.model}) for {options.epochs} epoch(s)")
        results[detector.label] = finetune(
            config.run, tests, out / safe_filename(detector.label), options
        )
    table = table2_rows(results, [t.name for t in config.tests])
    table["files"] = {
        "table_md": str(out / "table.md"),
        "table_csv": str(out / "table.csv"),
        "table_json": str(out / "table.json"),
    }
    atomic_write_text(out / "table.md", _markdown(table, config.paper))
    atomic_write_text(out / "table.csv", _csv(table))
    atomic_write_text(out / "table.json", json.dumps(table, indent=2) + "\n")
    return table
