"""The files of a benchmark run folder: ``table.md`` / ``table.csv`` (Table 1),
``results.json`` / ``results.csv`` (one row per dataset and method), ``per_image.csv``,
``config.yaml`` and ``robustness/``."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..._version import __version__
from ...data.io import atomic_write_text
from ..evaluate import RESULT_FIELDS
from ..robustness import write_robustness
from .tables import METRICS, BenchmarkRun, markdown_table, table_rows

#: Marks a ``results.json`` as written by this module (``sigma-iml report`` looks for it).
RESULTS_KIND = "sigma-iml benchmark"

PER_IMAGE_FIELDS = ("dataset", "method", "id", "f1", "iou", "tp", "fp", "fn", "gt_empty")


def _write_csv(path: Path, fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_run(run: BenchmarkRun) -> dict[str, str]:
    """Write every output file of ``run`` into its run folder; returns them by name."""
    config, out = run.config, run.config.out
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(run)
    long_rows = []
    spec_of = {m.name: m.spec for m in config.methods}
    for result in run.results:
        row = {**result.row(), "method_spec": spec_of.get(result.method, result.method)}
        long_rows.append(row)
    files = {
        "table_md": out / "table.md",
        "table_csv": out / "table.csv",
        "results_json": out / "results.json",
        "results_csv": out / "results.csv",
        "per_image_csv": out / "per_image.csv",
        "config": out / "config.yaml",
    }
    atomic_write_text(files["table_md"], markdown_table(run, rows))
    wide_fields = ["method", "spec"]
    for dataset in config.datasets:
        wide_fields += [f"{dataset.name} {m}" for m in (*METRICS, "n")]
    wide_fields += [f"average {m}" for m in METRICS]
    wide = []
    for row in rows:
        flat = {"method": row["method"], "spec": row["spec"]}
        for name, cell in row["datasets"].items():
            flat.update({f"{name} {k}": v for k, v in cell.items()})
        flat.update({f"average {k}": v for k, v in row["average"].items()})
        wide.append(flat)
    _write_csv(files["table_csv"], wide_fields, wide)
    _write_csv(
        files["results_csv"],
        RESULT_FIELDS,
        [{**r, "params": json.dumps(r["params"])} for r in long_rows],
    )
    with files["per_image_csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(PER_IMAGE_FIELDS), extrasaction="ignore")
        writer.writeheader()
        for result in run.results:
            for image in result.per_image:
                writer.writerow({"dataset": result.dataset, "method": result.method, **image})
    atomic_write_text(
        files["config"],
        yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True),
    )
    if run.robustness:
        for kind, path in write_robustness(run.robustness, out / "robustness").items():
            files[f"robustness_{kind}"] = Path(path)
    payload = {
        "kind": RESULTS_KIND,
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(run.seconds, 3),
        "resolution": "native" if config.size is None else str(config.size),
        "include_empty": config.include_empty,
        "limit": config.limit,
        "datasets": [
            {
                "name": d.name,
                "key": d.key,
                "format": d.format,
                "path": str(d.path),
                "options": d.options,
            }
            for d in config.datasets
        ],
        "methods": [{"label": m.name, "spec": m.spec, "key": m.key} for m in config.methods],
        "table": rows,
        "results": [{k: r[k] for k in RESULT_FIELDS} for r in long_rows],
        "failures": {
            f"{r.dataset} / {r.method}": r.failures[:100] for r in run.results if r.failures
        },
        "paper": [p.to_dict() for p in config.paper],
        "gallery": {
            "saved": config.save_predictions,
            "thumbnail_size": config.thumbnail_size,
            "maps": run.maps,
        },
        "files": {k: str(v.relative_to(out)) for k, v in files.items()},
    }
    atomic_write_text(files["results_json"], json.dumps(payload, indent=2, default=str) + "\n")
    run.files = {k: str(v) for k, v in files.items()}
    return run.files
