"""Reading a run folder into what the report shows.

Three kinds of runs are understood:

- a **benchmark** run (``sigma-iml benchmark``): ``results.json`` marked
  ``"kind": "sigma-iml benchmark"``, ``per_image.csv``, optional ``thumbnails/``,
  ``predictions/`` and ``robustness/``;
- an **annotation** run (``sigma-iml annotate``): ``records.jsonl`` in the folder and/or
  ``shards/*/records.jsonl``, optional ``summary.json``. Records are read defensively:
  unknown fields are ignored, a ``quality`` field (a number, or a mapping of named
  numbers) becomes sortable scores, and ground-truth counts (``gt``) become F1 / IoU;
- an **evaluation** JSON (``sigma-iml evaluate --json FILE``): a results table only.

Gallery images are referenced by path templates relative to the report page, filled in
by the page's script (``{d}`` dataset key, ``{m}`` method key, ``{s}`` item stem,
``{map}`` map name), so the page carries no per-item paths.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import load_image, load_mask
from ..data.io import atomic_write_bytes, read_records, safe_filename
from ..data.run_layout import RECORDS, SHARDS, SUMMARY_FILE
from ..errors import DataError, SigmaError
from ..evaluation.benchmark import RESULTS_KIND
from ..evaluation.metrics import f1_from_counts, iou_from_counts
from ..faithfulness import summarise as summarise_faithfulness
from . import faithfulness as faithfulness_view
from . import thumbnails as thumbs

#: Annotation-run thumbnails made by the report, inside the run folder.
ANNOTATION_ASSETS = "report_assets"


@dataclass
class ReportData:
    kind: str  # "benchmark" | "annotation" | "evaluation"
    title: str
    run_dir: Path
    #: Facts shown at the top: (name, value).
    facts: list[tuple[str, str]] = field(default_factory=list)
    results: dict[str, Any] | None = None  # benchmark results.json
    evaluation_rows: list[dict[str, Any]] = field(default_factory=list)
    robustness: dict[str, Any] | None = None
    robustness_png: str | None = None  # relative to run_dir
    summary: dict[str, Any] | None = None  # annotation summary
    #: Faithfulness per source and edit type (:func:`sigma_iml.faithfulness.summarise`).
    faithfulness: dict[str, Any] | None = None
    #: The gallery as the page's script reads it (see :func:`_gallery_skeleton`).
    gallery: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _gallery_skeleton(kind: str, scores: list[str]) -> dict[str, Any]:
    return {
        "kind": kind,
        "datasets": [],  # [{"name", "key"}]
        "methods": [],  # [{"label", "key", "maps": {dataset key: [map names]}}]
        "scores": scores,  # score names, per method
        # items: [dataset index, id, stem, status, has images, [[score per name] per method], note]
        "items": [],
        "pair_images": [],  # [{"label", "tpl"}] per item
        "method_images": [],  # [{"label", "tpl"}] per item and method
        "map_tpl": None,
    }


def load_run(path: str | os.PathLike, *, max_thumbnails: int | None = None) -> ReportData:
    """Read the run at ``path`` (a folder, or an ``evaluate --json`` file)."""
    target = Path(path)
    if target.is_file() and target.suffix.lower() == ".json":
        return _load_evaluation_json(target)
    if not target.is_dir():
        raise DataError("run folder not found", source=str(target))
    results = target / "results.json"
    if results.is_file():
        data = _read_json(results)
        if isinstance(data, dict) and data.get("kind") == RESULTS_KIND:
            return _load_benchmark(target, data)
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            return _load_evaluation_json(results)
    if _record_files(target) or (target / SUMMARY_FILE).is_file():
        return _load_annotation(target, max_thumbnails=max_thumbnails)
    raise DataError(
        "not a run folder: expected results.json (benchmark) or records.jsonl / "
        "shards/*/records.jsonl / summary.json (annotation)",
        source=str(target),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read JSON: {err}", source=str(path)) from None


def _load_evaluation_json(path: Path) -> ReportData:
    data = _read_json(path)
    rows = data.get("results") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise DataError(
            "expected {'results': [...]} as written by evaluate --json", source=str(path)
        )
    report = ReportData(kind="evaluation", title=f"Evaluation — {path.name}", run_dir=path.parent)
    report.evaluation_rows = [r for r in rows if isinstance(r, dict)]
    report.notes.append("An evaluate --json file has no per-image scores: no gallery.")
    return report


# --------------------------------------------------------------------------- benchmark


def _score(value: str | None) -> float | None:
    if value in (None, "", "None"):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return None if np.isnan(number) else number


def _load_benchmark(run_dir: Path, results: dict[str, Any]) -> ReportData:
    datasets = results.get("datasets", [])
    methods = results.get("methods", [])
    report = ReportData(
        kind="benchmark",
        title=f"Benchmark — {run_dir.name}",
        run_dir=run_dir,
        results=results,
    )
    report.facts = [
        ("resolution", str(results.get("resolution"))),
        ("empty ground truths", "included" if results.get("include_empty") else "excluded"),
        ("datasets", ", ".join(d["name"] for d in datasets)),
        ("methods", str(len(methods))),
        ("created", str(results.get("created", "-"))),
        ("sigma-iml", str(results.get("version", "-"))),
    ]
    if results.get("limit"):
        report.facts.append(("limit", f"first {results['limit']} pairs per dataset"))
    robustness = run_dir / "robustness" / "robustness.json"
    if robustness.is_file():
        report.robustness = _read_json(robustness)
        if (run_dir / "robustness" / "robustness.png").is_file():
            report.robustness_png = "robustness/robustness.png"

    saved = bool(results.get("gallery", {}).get("saved"))
    maps = results.get("gallery", {}).get("maps", {})
    gallery = _gallery_skeleton("benchmark", ["F1", "IoU"])
    gallery["datasets"] = [{"name": d["name"], "key": d["key"]} for d in datasets]
    gallery["methods"] = [
        {
            "label": m["label"],
            "key": m["key"],
            "maps": {d["key"]: maps.get(d["key"], {}).get(m["key"], []) for d in datasets},
        }
        for m in methods
    ]
    if saved:
        gallery["pair_images"] = [
            {"label": "original", "tpl": "thumbnails/{d}/{s}.original.jpg"},
            {"label": "edited", "tpl": "thumbnails/{d}/{s}.edited.jpg"},
            {"label": "ground truth", "tpl": "thumbnails/{d}/{s}.gt.png"},
        ]
        gallery["method_images"] = [
            {"label": "prediction overlay", "tpl": "predictions/{d}/{m}/{s}.overlay.jpg"},
            {"label": "predicted mask", "tpl": "predictions/{d}/{m}/{s}.png"},
        ]
        gallery["map_tpl"] = "predictions/{d}/{m}/{s}.{map}.png"
    else:
        report.notes.append(
            "Predictions were not saved (save_predictions: false): the gallery shows scores only."
        )
    dataset_index = {d["name"]: i for i, d in enumerate(datasets)}
    method_index = {m["label"]: i for i, m in enumerate(methods)}
    items: dict[tuple[int, str], list[Any]] = {}
    per_image = run_dir / "per_image.csv"
    if per_image.is_file():
        with per_image.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                d = dataset_index.get(row.get("dataset", ""))
                m = method_index.get(row.get("method", ""))
                if d is None or m is None:
                    continue
                key = (d, row["id"])
                item = items.get(key)
                if item is None:
                    scores = [[None, None] for _ in methods]
                    item = [d, row["id"], safe_filename(row["id"]), "ok", saved, scores, ""]
                    items[key] = item
                item[5][m] = [_score(row.get("f1")), _score(row.get("iou"))]
                if row.get("gt_empty") == "True":
                    item[6] = "empty ground truth"
    gallery["items"] = list(items.values())
    report.gallery = gallery
    return report


# --------------------------------------------------------------------------- annotation


def _record_files(run_dir: Path) -> list[Path]:
    files = [run_dir / RECORDS] if (run_dir / RECORDS).is_file() else []
    shards = run_dir / SHARDS
    if shards.is_dir():
        files += sorted(shards.glob(f"*/{RECORDS}"))
    return files


def _quality_scores(value: Any) -> dict[str, float]:
    """Named numbers from a record's ``quality`` field: a number, or a mapping whose
    numeric entries (one level of nesting) are scores."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, (int, float)):
        return {"quality": float(value)}
    scores: dict[str, float] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, bool):
                continue
            if isinstance(inner, (int, float)):
                scores[f"quality.{key}" if key not in ("score", "value") else "quality"] = float(
                    inner
                )
    return scores


def _resolve(value: Any, bases: list[Path]) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    if path.is_absolute():
        return path if path.is_file() else None
    for base in bases:
        if (base / path).is_file():
            return base / path
    return None


def _load_annotation(run_dir: Path, *, max_thumbnails: int | None) -> ReportData:
    latest: dict[str, tuple[dict[str, Any], Path]] = {}
    for file in _record_files(run_dir):
        for record in read_records(file):
            latest[str(record["id"])] = (record, file.parent)
    summary_path = run_dir / SUMMARY_FILE
    summary = _read_json(summary_path) if summary_path.is_file() else None
    report = ReportData(
        kind="annotation",
        title=f"Annotation — {run_dir.name}",
        run_dir=run_dir,
        summary=summary if isinstance(summary, dict) else None,
    )
    quality_names: list[str] = []
    for record, _ in latest.values():
        for name in _quality_scores(record.get("quality")):
            if name not in quality_names:
                quality_names.append(name)
    has_gt = any(isinstance(r.get("gt"), dict) for r, _ in latest.values())
    # With faithfulness, the side-effect fraction comes first: the gallery sorts by it.
    faithful = any(isinstance(r.get("faithfulness"), dict) for r, _ in latest.values())
    score_names = (
        (list(faithfulness_view.SCORES) if faithful else [])
        + quality_names
        + (["F1", "IoU"] if has_gt else [])
    )
    gallery = _gallery_skeleton("annotation", score_names)
    method = (report.summary or {}).get("method") or "annotation"
    gallery["datasets"] = [{"name": run_dir.name, "key": "run"}]
    gallery["methods"] = [{"label": str(method), "key": "run", "maps": {"run": []}}]
    gallery["pair_images"] = [
        {"label": "edited", "tpl": ANNOTATION_ASSETS + "/{s}.edited.jpg"},
        {"label": "mask", "tpl": ANNOTATION_ASSETS + "/{s}.mask.png"},
        {"label": "overlay", "tpl": ANNOTATION_ASSETS + "/{s}.overlay.jpg"},
    ]
    assets = run_dir / ANNOTATION_ASSETS
    made = 0
    counts = {"ok": 0, "failed": 0, "other": 0}
    with_probability = 0
    with_panel = 0
    with_faithfulness = 0
    for item_id, (record, base) in latest.items():
        status = str(record.get("status", "other"))
        counts[status if status in counts else "other"] += 1
        quality = _quality_scores(record.get("quality"))
        scores = faithfulness_view.scores(record) if faithful else []
        scores += [quality.get(name) for name in quality_names]
        gt = record.get("gt")
        if has_gt:
            if isinstance(gt, dict) and all(k in gt for k in ("tp", "fp", "fn")):
                positives = gt["tp"] + gt["fn"]
                scores += (
                    [
                        f1_from_counts(gt["tp"], gt["fp"], gt["fn"]),
                        iou_from_counts(gt["tp"], gt["fp"], gt["fn"]),
                    ]
                    if positives
                    else [None, None]
                )
            else:
                scores += [None, None]
        stem = safe_filename(item_id)
        has_images = False
        if status == "ok" and (max_thumbnails is None or made < max_thumbnails):
            has_images = _annotation_thumbnails(record, [base, run_dir], assets, stem)
            made += has_images
            if has_images and (assets / f"{stem}.probability.png").is_file():
                with_probability += 1
            if has_images and (assets / f"{stem}.panel.png").is_file():
                with_panel += 1
            if has_images and faithful:
                with_faithfulness += faithfulness_view.make_overlay(
                    record,
                    _resolve(record.get("edited"), [base, run_dir]),
                    run_dir,
                    assets / f"{stem}.{faithfulness_view.OVERLAY_SUFFIX}",
                )
        note = str(record.get("error") or "") if status != "ok" else ""
        gallery["items"].append([0, item_id, stem, status, has_images, [scores], note])
    # Shown only when every imaged item has one: a missing image would be a broken link.
    if made and with_probability == made:
        gallery["pair_images"].append(
            {"label": "probability", "tpl": ANNOTATION_ASSETS + "/{s}.probability.png"}
        )
    if made and with_panel == made:
        gallery["pair_images"].append(
            {"label": "instruction branch", "tpl": ANNOTATION_ASSETS + "/{s}.panel.png"}
        )
    if made and with_faithfulness == made:
        gallery["pair_images"].append(
            {
                "label": "faithfulness",
                "tpl": ANNOTATION_ASSETS + "/{s}." + faithfulness_view.OVERLAY_SUFFIX,
            }
        )
    if faithful:
        report.faithfulness = summarise_faithfulness(r for r, _ in latest.values())
    report.gallery = gallery
    report.facts = [
        ("records", str(len(latest))),
        ("ok", str(counts["ok"])),
        ("failed", str(counts["failed"])),
        ("method", str(method)),
    ]
    if counts["other"]:
        report.facts.append(("other status", str(counts["other"])))
    for name in quality_names:
        values = [
            v
            for v in (_quality_scores(r.get("quality")).get(name) for r, _ in latest.values())
            if v is not None
        ]
        if values:
            report.facts.append((f"mean {name}", f"{float(np.mean(values)):.4f} (n={len(values)})"))
    if not quality_names:
        report.notes.append("The records carry no quality scores.")
    if max_thumbnails is not None and counts["ok"] > max_thumbnails:
        report.notes.append(f"Images were made for the first {max_thumbnails} records only.")
    return report


def _annotation_thumbnails(
    record: dict[str, Any], bases: list[Path], assets: Path, stem: str
) -> bool:
    """Edited, mask, overlay (and probability) thumbnails of one record, made once:
    existing files are kept, so running the report again is quick."""
    wanted = [assets / f"{stem}.{suffix}" for suffix in ("edited.jpg", "mask.png", "overlay.jpg")]
    probability_path = _resolve(record.get("probability"), bases)
    if probability_path is not None:
        wanted.append(assets / f"{stem}.probability.png")
    panel_path = _resolve(record.get("panel"), bases)
    if all(p.is_file() for p in wanted) and (
        panel_path is None or (assets / f"{stem}.panel.png").is_file()
    ):
        return True
    edited_path = _resolve(record.get("edited"), bases)
    mask_path = _resolve(record.get("mask"), bases)
    if edited_path is None or mask_path is None:
        return False
    try:
        edited = thumbs.shrink_rgb(load_image(edited_path))
        size = (edited.shape[1], edited.shape[0])
        mask = thumbs.shrink_mask(load_mask(mask_path), size)
        thumbs.write_jpeg(wanted[0], edited)
        thumbs.write_grey_png(wanted[1], mask)
        thumbs.write_jpeg(wanted[2], thumbs.overlay(edited, mask, None))
        if probability_path is not None:
            grey = load_image(probability_path)[:, :, 0]
            thumbs.write_grey_png(wanted[3], thumbs.resize_grey(grey, size))
        if panel_path is not None:
            # The panel is already a small strip of tiles: copied as it is.
            atomic_write_bytes(assets / f"{stem}.panel.png", panel_path.read_bytes())
    except (SigmaError, OSError, ValueError):
        return False
    return True
