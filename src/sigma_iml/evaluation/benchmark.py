"""``sigma-iml benchmark``: every method on every dataset, written in the layout of the
paper's Table 1, plus the robustness study of §4.3 when the config asks for it.

A config (YAML) names the datasets, the methods and the run folder::

    out: runs/table1                 # run folder
    resolution: 518                  # or "native"
    include_empty: false
    limit: null                      # first N pairs of each dataset
    save_predictions: false          # thumbnails + predicted masks for the report gallery
    datasets:
      - {name: CoCoGlide, format: cocoglide, path: /data/CocoGlide}
      - {name: AutoSplice, format: autosplice, path: /data/AutoSplice, quality: 100}
    methods:
      - pixdiff-otsu
      - {spec: "pixdiff-fixed:tau=0.05", label: "PixDiff-Fixed (0.05)"}
    paper: [...]                     # the paper's numbers, shown beside ours
    robustness: {...}                # see RobustnessConfig

Keys of a dataset other than ``name``, ``format`` and ``path`` are the reader's options
(``quality`` for AutoSplice, ``split`` for MagicBrush, ...). Relative paths are taken
from the working directory, like every path given on the command line.

Each dataset is decoded once and scored by all methods together (:func:`evaluate`).
The run folder gets ``table.md`` / ``table.csv`` (Table 1: methods as rows, per dataset
F1 and IoU as per-image means in %, and their average over datasets), ``results.json`` /
``results.csv`` (one row per dataset and method, per-image-mean and micro metrics),
``per_image.csv``, ``config.yaml`` and, when asked, ``predictions/`` and ``thumbnails/``
for the gallery of ``sigma-iml report`` and ``robustness/`` (JSON and PNG).
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._version import __version__
from ..data.io import atomic_write_text, safe_filename
from ..data.pair import Pair
from ..data.readers import DATASET_FORMATS, open_dataset, take
from ..errors import ConfigError
from ..methods import MaskMethod, Prediction, build_method
from ..report import thumbnails as thumbs
from .evaluate import RESULT_FIELDS, MethodResult, evaluate
from .robustness import DEFAULT_LEVELS, RobustnessResult, run_robustness, write_robustness

#: Marks a ``results.json`` as written by this module (``sigma-iml report`` looks for it).
RESULTS_KIND = "sigma-iml benchmark"

PER_IMAGE_FIELDS = ("dataset", "method", "id", "f1", "iou", "tp", "fp", "fn", "gt_empty")
METRICS = ("f1", "iou", "f1_micro", "iou_micro")

# --------------------------------------------------------------------------- config


class DatasetEntry(BaseModel):
    """One dataset; extra keys are the reader's options."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    format: str
    path: Path

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def key(self) -> str:
        return safe_filename(self.name)


class MethodEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str = Field(min_length=1)
    #: The row name in tables (default: the spec).
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.spec

    @property
    def key(self) -> str:
        return safe_filename(self.name)


class PaperRow(BaseModel):
    """A row of the paper's table: F1 and IoU in % per dataset name."""

    model_config = ConfigDict(extra="forbid")

    label: str
    #: The label of our method that reproduces this row, if any.
    method: str | None = None
    scores: dict[str, tuple[float, float]]


class RobustnessConfig(BaseModel):
    """Which datasets and methods to perturb, how, and at which levels (empty list: skip
    that perturbation). Levels default to :data:`~.robustness.DEFAULT_LEVELS` (ours)."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] | None = None
    methods: list[str] | None = None
    target: Literal["edited", "both"] = "edited"
    limit: int | None = Field(default=None, gt=0)
    seed: int = 0
    jpeg: list[float] = Field(default_factory=lambda: list(DEFAULT_LEVELS["jpeg"]))
    noise: list[float] = Field(default_factory=lambda: list(DEFAULT_LEVELS["noise"]))
    blur: list[float] = Field(default_factory=lambda: list(DEFAULT_LEVELS["blur"]))

    def levels(self) -> dict[str, list[float]]:
        # YAML's 90 arrives as 90.0; quality factors and kernel sizes are shown as integers.
        return {
            kind: [int(v) if kind != "noise" and float(v).is_integer() else v for v in values]
            for kind, values in (("jpeg", self.jpeg), ("noise", self.noise), ("blur", self.blur))
            if values
        }


class BenchmarkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasets: list[DatasetEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)
    out: Path
    resolution: int | Literal["native"] = 518
    include_empty: bool = False
    limit: int | None = Field(default=None, gt=0)
    workers: int = Field(default=2, ge=0)
    save_predictions: bool = False
    thumbnail_size: int = Field(default=thumbs.DEFAULT_MAX_SIDE, ge=16, le=1024)
    paper: list[PaperRow] = Field(default_factory=list)
    robustness: RobustnessConfig | None = None

    @field_validator("methods", mode="before")
    @classmethod
    def _methods_from_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"spec": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("resolution")
    @classmethod
    def _positive_resolution(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError("resolution must be a positive size or 'native'")
        return value

    @model_validator(mode="after")
    def _names_are_unique_and_known(self) -> BenchmarkConfig:
        for what, names in (
            ("dataset name", [d.name for d in self.datasets]),
            ("method label", [m.name for m in self.methods]),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{what}s must be unique; repeated: {', '.join(repeated)}")
        known_methods = {m.name for m in self.methods} | {m.spec for m in self.methods}
        if self.robustness is not None:
            known_datasets = {d.name for d in self.datasets}
            for name in self.robustness.datasets or []:
                if name not in known_datasets:
                    raise ValueError(f"robustness dataset {name!r} is not one of the datasets")
            for name in self.robustness.methods or []:
                if name not in known_methods:
                    raise ValueError(f"robustness method {name!r} is not a method label or spec")
        for row in self.paper:
            if row.method is not None and row.method not in known_methods:
                raise ValueError(
                    f"paper row {row.label!r}: {row.method!r} is not a method label or spec"
                )
        return self

    @property
    def size(self) -> int | None:
        return None if self.resolution == "native" else int(self.resolution)


def _check_reader_options(entry: DatasetEntry) -> None:
    if entry.format not in DATASET_FORMATS:
        raise ConfigError(
            f"dataset {entry.name!r}: unknown format {entry.format!r}; known: "
            f"{', '.join(sorted(DATASET_FORMATS))}"
        )
    reader = DATASET_FORMATS[entry.format].read
    parameters = inspect.signature(reader).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = [k for k in entry.options if k not in parameters]
    if unknown and not takes_any:
        allowed = [k for k in parameters if k != "path"]
        raise ConfigError(
            f"dataset {entry.name!r}: format {entry.format!r} takes no option "
            f"{', '.join(map(repr, unknown))}; it takes: {', '.join(allowed) or 'none'}"
        )


def load_config(path: str | Path, **overrides: Any) -> BenchmarkConfig:
    """Read and validate a benchmark YAML; ``overrides`` (non-None values) replace keys."""
    source = Path(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"benchmark config {source} not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"benchmark config {source}: invalid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"benchmark config {source}: expected a mapping at the top level")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        config = BenchmarkConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"benchmark config {source}: {problems}") from None
    for entry in config.datasets:
        _check_reader_options(entry)
    return config


def select_datasets(config: BenchmarkConfig, names: Sequence[str]) -> BenchmarkConfig:
    """The config with only the datasets named (and robustness restricted to them)."""
    if not names:
        return config
    known = {d.name for d in config.datasets}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(
            f"no dataset named {', '.join(map(repr, missing))}; known: {', '.join(sorted(known))}"
        )
    update: dict[str, Any] = {"datasets": [d for d in config.datasets if d.name in names]}
    if config.robustness is not None and config.robustness.datasets is not None:
        kept = [n for n in config.robustness.datasets if n in names]
        update["robustness"] = config.robustness.model_copy(update={"datasets": kept})
    return config.model_copy(update=update)


# --------------------------------------------------------------------------- gallery assets


class GallerySaver:
    """Writes what the report gallery shows, for one dataset: thumbnails of each pair
    (``thumbnails/<dataset>/<id>.{original,edited}.jpg``, ``.gt.png``) and per method the
    predicted mask (``predictions/<dataset>/<method>/<id>.png``, 0/255), an overlay on
    the edited image (``<id>.overlay.jpg``) and any intermediate maps the method returned
    (``<id>.<map>.png``), all at most ``max_side`` pixels."""

    def __init__(self, out: Path, dataset_key: str, max_side: int):
        self.out = out
        self.dataset_key = dataset_key
        self.max_side = max_side
        self._thumbnailed: set[str] = set()
        #: Method key -> names of the intermediate maps it saved.
        self.maps: dict[str, set[str]] = {}

    def save(self, method_key: str, pair: Pair, prediction: Prediction) -> None:
        stem = safe_filename(pair.id)
        edited = thumbs.shrink_rgb(pair.edited, self.max_side)
        size = (edited.shape[1], edited.shape[0])
        truth = None if pair.mask is None else thumbs.shrink_mask(pair.mask, size)
        if stem not in self._thumbnailed:
            folder = self.out / "thumbnails" / self.dataset_key
            thumbs.write_jpeg(
                folder / f"{stem}.original.jpg", thumbs.shrink_rgb(pair.original, self.max_side)
            )
            thumbs.write_jpeg(folder / f"{stem}.edited.jpg", edited)
            if truth is not None:
                thumbs.write_grey_png(folder / f"{stem}.gt.png", truth)
            self._thumbnailed.add(stem)
        folder = self.out / "predictions" / self.dataset_key / method_key
        predicted = thumbs.shrink_mask(prediction.mask, size)
        thumbs.write_grey_png(folder / f"{stem}.png", predicted)
        thumbs.write_jpeg(folder / f"{stem}.overlay.jpg", thumbs.overlay(edited, predicted, truth))
        names = self.maps.setdefault(method_key, set())
        for name, values in _intermediate_maps(prediction).items():
            small = thumbs.resize_grey(thumbs.grey_map(values), size)
            thumbs.write_grey_png(folder / f"{stem}.{safe_filename(name)}.png", small)
            names.add(safe_filename(name))


def _intermediate_maps(prediction: Prediction) -> dict[str, np.ndarray]:
    """2-D maps worth showing: ``extras["intermediates"]`` and a non-binary probability."""
    maps: dict[str, np.ndarray] = {}
    probability = np.asarray(prediction.probability)
    if probability.size and not np.isin(probability, (0.0, 1.0)).all():
        maps["probability"] = probability
    intermediates = prediction.extras.get("intermediates")
    if isinstance(intermediates, dict):
        for name, value in intermediates.items():
            array = np.asarray(value) if isinstance(value, np.ndarray) else None
            if array is not None and array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
                array = array.squeeze()
            if array is not None and array.ndim == 2 and array.size:
                maps[str(name)] = array.astype(np.float32)
    return maps


class _SavingMethod(MaskMethod):
    """A method that hands each prediction to a :class:`GallerySaver` as it is made, so
    :func:`evaluate` keeps decoding each pair once and predicting each pair once."""

    def __init__(self, inner: MaskMethod, saver: GallerySaver, key: str):
        self.inner = inner
        self.saver = saver
        self.key = key
        self.name = inner.name  # type: ignore[misc]  # per instance, mirrors the wrapped one
        self.batch_size = inner.batch_size

    def params(self) -> dict[str, Any]:
        return self.inner.params()

    def spec(self) -> str:
        return self.inner.spec()

    def predict_batch(self, pairs: Sequence[Pair]) -> list[Prediction]:
        predictions = self.inner.predict_batch(pairs)
        for pair, prediction in zip(pairs, predictions):
            self.saver.save(self.key, pair, prediction)
        return predictions


# --------------------------------------------------------------------------- running


@dataclass
class BenchmarkRun:
    config: BenchmarkConfig
    results: list[MethodResult] = field(default_factory=list)
    robustness: list[RobustnessResult] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    #: Dataset key -> method key -> names of intermediate maps saved for the gallery.
    maps: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    seconds: float = 0.0


def _check_paths(config: BenchmarkConfig) -> None:
    missing = [d for d in config.datasets if not d.path.exists()]
    if missing:
        raise ConfigError(
            "dataset path not found: "
            + "; ".join(f"{d.name}: {d.path}" for d in missing)
            + " (edit the config, or run a subset with --dataset NAME)"
        )


def run_benchmark(
    config: BenchmarkConfig, *, log: Callable[[str], None] = lambda message: None
) -> BenchmarkRun:
    """Run every method on every dataset (and the robustness study if configured) and
    write the run folder. Methods are built once and reused for every dataset."""
    _check_paths(config)
    start = time.perf_counter()
    methods = [build_method(entry.spec) for entry in config.methods]
    run = BenchmarkRun(config=config)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    for dataset in config.datasets:
        log(f"{dataset.name}: scoring {len(methods)} method(s)")
        refs = take(
            open_dataset(dataset.path, format=dataset.format, **dataset.options), config.limit
        )
        saver = None
        scored: Sequence[MaskMethod] = methods
        if config.save_predictions:
            saver = GallerySaver(out, dataset.key, config.thumbnail_size)
            scored = [
                _SavingMethod(method, saver, entry.key)
                for method, entry in zip(methods, config.methods)
            ]
        results = evaluate(
            refs,
            scored,
            dataset=dataset.name,
            resolution=config.size,
            include_empty=config.include_empty,
            workers=config.workers,
        )
        for entry, result in zip(config.methods, results):
            result.method = entry.name
        run.results.extend(results)
        if saver is not None:
            run.maps[dataset.key] = {k: sorted(v) for k, v in saver.maps.items()}
    if config.robustness is not None:
        run.robustness = _run_robustness(config, methods)
    run.seconds = time.perf_counter() - start
    write_run(run)
    return run


def _run_robustness(
    config: BenchmarkConfig, methods: Sequence[MaskMethod]
) -> list[RobustnessResult]:
    settings = config.robustness
    assert settings is not None
    wanted = settings.methods
    chosen = [
        (entry, method)
        for entry, method in zip(config.methods, methods)
        if wanted is None or entry.name in wanted or entry.spec in wanted
    ]
    results = []
    for dataset in config.datasets:
        if settings.datasets is not None and dataset.name not in settings.datasets:
            continue
        # The smaller limit wins: --limit on the command line also shortens the study.
        limits = [n for n in (settings.limit, config.limit) if n is not None]
        limit = min(limits) if limits else None
        refs = take(open_dataset(dataset.path, format=dataset.format, **dataset.options), limit)
        results.append(
            run_robustness(
                refs,
                [method for _, method in chosen],
                labels=[entry.name for entry, _ in chosen],
                levels=settings.levels(),
                target=settings.target,
                dataset=dataset.name,
                resolution=config.size,
                include_empty=config.include_empty,
                seed=settings.seed,
                workers=config.workers,
            )
        )
    return results


# --------------------------------------------------------------------------- writing


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


def _write_csv(path: Path, fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _jsonable_config(config: BenchmarkConfig) -> dict[str, Any]:
    return json.loads(config.model_dump_json())


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
        yaml.safe_dump(_jsonable_config(config), sort_keys=False, allow_unicode=True),
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
        "paper": [p.model_dump() for p in config.paper],
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
