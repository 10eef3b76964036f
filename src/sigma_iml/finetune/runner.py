"""``sigma-iml finetune``: train an IMDL-BenCo detector on an annotate run, in IMDL-BenCo's
own venv, and score it before and after (docs/finetune.md).

Our side does what needs our code: it finds IMDL-BenCo's python, writes each test set
in IMDL-BenCo's JsonDataset layout (any dataset our readers read: the edited image and
our decoded ground truth as PNGs, so that both sides see the same pixels), writes a job
file and starts :mod:`.driver` there. The training list is the run's own
``imdlbenco.json``, read by IMDL-BenCo as it is (re-exported only for ``min_quality``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from ..annotation.export import export_imdlbenco
from ..annotation.quality import DEFAULT_QUALITY_METRIC, QualityMetric
from ..config import ConfigModel
from ..data.io import atomic_write_text, encode_png, safe_filename, write_mask_png
from ..data.pair import load_pair
from ..data.readers import detect_format, open_dataset
from ..errors import ConfigError, SigmaError
from .models import DEFAULT_MODEL, model_arguments, resolve_model

#: Where :func:`imdlbenco_python` looks first: the python of IMDL-BenCo's venv.
PYTHON_ENV = "SIGMA_IMDLBENCO_PYTHON"
VENV = ".venv-imdlbenco"
DRIVER = Path(__file__).with_name("driver.py")
METRICS = "metrics.json"
LOG = "imdlbenco.log"


class FinetuneError(SigmaError):
    """IMDL-BenCo's side failed; the message ends with the tail of its log."""


def imdlbenco_python() -> Path | None:
    """IMDL-BenCo's python: ``$SIGMA_IMDLBENCO_PYTHON``, else ``.venv-imdlbenco`` in the
    working directory, else in the checkout this package runs from (as
    ``scripts/setup-imdlbenco.sh`` makes it); None when there is none."""
    given = os.environ.get(PYTHON_ENV)
    if given:
        return Path(given)
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = root / VENV / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


class TestSet(ConfigModel):
    """A dataset to score on; extra reader options go in ``options``."""

    name: str = Field(min_length=1)
    path: Path
    format: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, gt=0)


class FinetuneOptions(ConfigModel):
    """What to train and how; None takes the detector preset's value (:mod:`.models`)."""

    model: str = DEFAULT_MODEL
    epochs: int = Field(default=1, gt=0)
    device: str = "auto"
    image_size: int | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, gt=0)
    test_batch_size: int = Field(default=2, gt=0)
    lr: float | None = Field(default=None, gt=0)
    min_lr: float = Field(default=0.0, ge=0)
    # IMDL-BenCo's demo scripts warm up for 2 epochs.
    warmup_epochs: int = Field(default=2, ge=0)
    weight_decay: float = Field(default=0.05, ge=0)
    accum_iter: int = Field(default=1, gt=0)
    seed: int = 42
    augment: bool = True
    model_args: dict[str, Any] = Field(default_factory=dict)
    #: Weights to start from (the paper's "Public Weight" row): an IMDL-BenCo checkpoint.
    init_checkpoint: Path | None = None
    min_quality: float | None = None
    quality_metric: QualityMetric = DEFAULT_QUALITY_METRIC
    num_workers: int = Field(default=0, ge=0)
    threads: int | None = Field(default=None, gt=0)


def write_test_set(test: TestSet, dest: Path) -> dict[str, Any]:
    """Write ``test`` as an IMDL-BenCo JsonDataset list ``dest/<name>.json`` of PNGs in
    ``dest/<name>/``; pairs without ground truth or that fail to load are left out and
    counted. Returns ``{"path", "n", "skipped_no_mask", "failed"}``."""
    key = safe_filename(test.name)
    folder = dest / key
    folder.mkdir(parents=True, exist_ok=True)
    fmt = test.format or detect_format(test.path)
    rows: list[list[str]] = []
    skipped = failed = 0
    for index, ref in enumerate(open_dataset(test.path, format=fmt, **test.options)):
        if test.limit is not None and index >= test.limit:
            break
        if not ref.has_mask:
            skipped += 1
            continue
        try:
            pair = load_pair(ref)
        except SigmaError:
            failed += 1
            continue
        stem = f"{index:06d}_{safe_filename(pair.id)}"
        edited = folder / f"{stem}.png"
        mask = folder / f"{stem}_mask.png"
        edited.write_bytes(encode_png(pair.edited))
        if pair.mask is None or not pair.mask.any():
            rows.append([str(edited.resolve()), "Negative"])
        else:
            write_mask_png(mask, pair.mask)
            rows.append([str(edited.resolve()), str(mask.resolve())])
    if not rows:
        raise ConfigError(f"test set {test.name!r} ({test.path}) has no pair with a ground truth")
    listing = dest / f"{key}.json"
    atomic_write_text(listing, json.dumps(rows, indent=1) + "\n")
    return {
        "path": str(listing.resolve()),
        "n": len(rows),
        "skipped_no_mask": skipped,
        "failed": failed,
    }


def _training_list(run: Path, out: Path, options: FinetuneOptions) -> Path:
    if options.min_quality is None:
        listing = run / "imdlbenco.json"
        if not listing.is_file():
            raise ConfigError(f"{run} has no imdlbenco.json: is it a finished annotate run?")
        return listing.resolve()
    export_imdlbenco(
        run, out / "train", min_quality=options.min_quality, metric=options.quality_metric
    )
    return (out / "train" / "imdlbenco.json").resolve()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def finetune(
    run: str | Path,
    tests: list[TestSet],
    out: str | Path,
    options: FinetuneOptions | None = None,
    *,
    python: Path | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Train ``options.model`` on ``run`` with IMDL-BenCo, scoring on ``tests`` before and
    after every epoch; returns the parsed ``out/metrics.json``."""
    from ..device import resolve_device

    options = options or FinetuneOptions()
    run, out = Path(run), Path(out)
    if not tests:
        raise ConfigError("finetune needs at least one test set")
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise ConfigError(f"test set names must be unique: {', '.join(names)}")
    python = python or imdlbenco_python()
    if python is None or not Path(python).exists():
        raise ConfigError(
            f"no IMDL-BenCo python ({VENV}/bin/python or ${PYTHON_ENV}); "
            "bash scripts/setup-imdlbenco.sh creates it"
        )
    preset, _ = resolve_model(options.model)
    image_size = options.image_size or preset.image_size
    out.mkdir(parents=True, exist_ok=True)
    train = _training_list(run, out, options)
    if not json.loads(train.read_text(encoding="utf-8")):
        raise ConfigError(f"{train} lists no pair to train on")
    prepared = {t.name: write_test_set(t, out / "test") for t in tests}
    device = str(resolve_device(options.device))
    job = {
        "model": preset.imdlbenco_model,
        "model_args": model_arguments(preset, image_size, options.model_args),
        "train": str(train),
        "tests": {name: info["path"] for name, info in prepared.items()},
        "out": str(out.resolve()),
        "epochs": options.epochs,
        "device": device,
        "image_size": image_size,
        "resize": preset.resize,
        "edge_mask_width": preset.edge_mask_width,
        "batch_size": options.batch_size or preset.batch_size,
        "test_batch_size": options.test_batch_size,
        "lr": options.lr or preset.lr,
        "min_lr": options.min_lr,
        "warmup_epochs": options.warmup_epochs,
        "weight_decay": options.weight_decay,
        "accum_iter": options.accum_iter,
        "seed": options.seed,
        "augment": options.augment,
        "predict_label": preset.predict_label,
        "no_model_eval": preset.no_model_eval,
        "init_checkpoint": str(options.init_checkpoint) if options.init_checkpoint else None,
        "num_workers": options.num_workers,
        "threads": options.threads,
    }
    job_path = out / "job.json"
    atomic_write_text(job_path, json.dumps(job, indent=2) + "\n")
    (out / METRICS).unlink(missing_ok=True)
    log = out / LOG
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        # -I: the driver's folder (our package) and PYTHONPATH stay off IMDL-BenCo's
        # sys.path.
        try:
            done = subprocess.run(
                [str(python), "-I", str(DRIVER), str(job_path)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise FinetuneError(f"IMDL-BenCo training ran past {timeout} s; log: {log}") from None
    if done.returncode != 0 or not (out / METRICS).is_file():
        raise FinetuneError(
            f"IMDL-BenCo training failed (exit {done.returncode}); log {log}:\n{_tail(log)}"
        )
    metrics = json.loads((out / METRICS).read_text(encoding="utf-8"))
    metrics["test_sets"] = prepared
    metrics["preset"] = options.model
    metrics["wall_seconds"] = round(time.perf_counter() - started, 3)
    metrics["python"] = str(python)
    atomic_write_text(out / METRICS, json.dumps(metrics, indent=2) + "\n")
    return metrics


def final_scores(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The last epoch's ``{test: {f1, iou}}`` (the before-training scores when no epoch ran)."""
    epochs = metrics.get("epochs") or []
    return epochs[-1]["test"] if epochs else metrics["before"]
