"""``annotate``: masks for every pair of a dataset, resumable after a crash.

Per pair: ``masks/<id>.png`` (0/255, the edited image's size), one line in
``records.jsonl`` (id, status, mask path, seconds, error, ...), and at the end
``imdlbenco.json`` (IMDL-BenCo's ``[[edited, mask], ...]`` with absolute paths) and
``summary.json``. A mask is written atomically before its record, so after ``kill -9``
an item either has a record and a complete mask or is done again; running again skips
finished items (failed ones too, unless ``retry_failed``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import EncodedImage
from ..data.loading import Loaded, batched, iter_loaded
from ..data.pair import PairRef
from ..data.writers import (
    RecordLog,
    atomic_write_text,
    latest_records,
    safe_filename,
    write_imdlbenco_json,
    write_mask_png,
    write_probability_png,
)
from ..evaluation.metrics import ConfusionCounts, PixelScores, confusion_counts
from ..methods import MaskMethod, Prediction

RECORDS = "records.jsonl"
MASKS = "masks"
PROBABILITIES = "probabilities"
EDITED_COPIES = "edited"


@dataclass
class AnnotationSummary:
    out: str
    method: str
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    pairs_per_second: float = 0.0
    total_ok: int = 0
    total_failed: int = 0
    #: Scores over every finished item that had a ground-truth mask (None if none had).
    scores: dict[str, Any] | None = None
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jsonable(extras: dict[str, Any]) -> dict[str, Any]:
    """The extras that fit in a JSON record (arrays are left out)."""
    kept = {}
    for key, value in extras.items():
        if isinstance(value, np.ndarray):
            continue
        if isinstance(value, (np.floating, np.integer)):
            value = value.item()
        try:
            json.dumps(value)
        except TypeError:
            continue
        kept[key] = value
    return kept


class _Annotator:
    def __init__(self, method: MaskMethod, out: Path, save_probability: bool):
        self.method = method
        self.out = out
        self.save_probability = save_probability

    def _edited_path(self, ref: PairRef, loaded: Loaded, stem: str) -> str:
        """Where the edited image lives on disk, for the IMDL-BenCo listing. Images that
        came as bytes (parquet, tar shards) are saved once as PNG next to the masks."""
        if isinstance(ref.edited, (str, os.PathLike)):
            return str(Path(ref.edited).resolve())
        copy = self.out / EDITED_COPIES / f"{stem}.png"
        if isinstance(ref.edited, EncodedImage) or loaded.pair is not None:
            from ..data.writers import atomic_write_bytes, encode_png

            atomic_write_bytes(copy, encode_png(loaded.pair.edited))
        return str(copy.resolve())

    def write(self, loaded: Loaded, prediction: Prediction, seconds: float) -> dict[str, Any]:
        pair = loaded.pair
        stem = safe_filename(pair.id)
        mask_path = self.out / MASKS / f"{stem}.png"
        mask = prediction.mask
        if (mask.shape[1], mask.shape[0]) != pair.size:
            raise ValueError(
                f"method {self.method.name} returned a {mask.shape[1]}x{mask.shape[0]} map for a "
                f"{pair.size[0]}x{pair.size[1]} image"
            )
        write_mask_png(mask_path, mask)
        record: dict[str, Any] = {
            "id": pair.id,
            "status": "ok",
            "mask": f"{MASKS}/{stem}.png",
            "edited": self._edited_path(loaded.ref, loaded, stem),
            "width": pair.size[0],
            "height": pair.size[1],
            "original_resized_from": list(pair.original_size) if pair.original_resized else None,
            "instruction": pair.instruction,
            "seconds": round(seconds, 6),
            "error": None,
        }
        if self.save_probability:
            write_probability_png(self.out / PROBABILITIES / f"{stem}.png", prediction.probability)
            record["probability"] = f"{PROBABILITIES}/{stem}.png"
        if pair.mask is not None:
            counts = confusion_counts(mask, pair.mask)
            record["gt"] = {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "tn": counts.tn}
        record["extras"] = _jsonable(prediction.extras)
        return record


def _failure(ref: PairRef, error: BaseException | str, seconds: float = 0.0) -> dict[str, Any]:
    return {
        "id": ref.id,
        "status": "failed",
        "mask": None,
        "seconds": round(seconds, 6),
        "error": str(error),
    }


def _progress(total: int | None, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]annotate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} pairs/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    return Progress(*columns, disable=not enabled, transient=False)


def annotate(
    refs: Iterable[PairRef],
    method: MaskMethod,
    out: str | os.PathLike,
    *,
    retry_failed: bool = False,
    save_probability: bool = False,
    workers: int = 2,
    progress: bool = True,
    total: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> AnnotationSummary:
    """Annotate ``refs`` with ``method`` into ``out``; see the module docstring."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    records_path = out_dir / RECORDS
    previous = latest_records([records_path])
    finished = {
        item
        for item, record in previous.items()
        if (record.get("status") == "ok" and (out_dir / str(record.get("mask"))).is_file())
        or (record.get("status") == "failed" and not retry_failed)
    }
    summary = AnnotationSummary(out=str(out_dir), method=method.spec())
    writer = _Annotator(method, out_dir, save_probability)
    seen: set[str] = set()
    start = time.perf_counter()

    def pending(log: RecordLog) -> Iterator[PairRef]:
        for ref in refs:
            if ref.id in seen:
                record = _failure(
                    ref,
                    f"duplicate id {ref.id!r} in the dataset; only its first occurrence is annotated",
                )
                # The first occurrence keeps its record; the duplicate is reported only.
                summary.failed += 1
                summary.failures.append({"id": ref.id, "error": record["error"]})
                continue
            seen.add(ref.id)
            if ref.id in finished:
                summary.skipped += 1
                continue
            yield ref

    with RecordLog(records_path) as log, _progress(total, progress) as bar:
        task = bar.add_task("annotate", total=total, rate="-")

        def emit(record: dict[str, Any]) -> None:
            log.append(record)
            if record["status"] == "ok":
                summary.done += 1
            else:
                summary.failed += 1
                summary.failures.append({"id": record["id"], "error": record["error"]})
            if on_record is not None:
                on_record(record)
            elapsed = time.perf_counter() - start
            finished_now = summary.done + summary.failed
            bar.update(
                task,
                completed=finished_now + summary.skipped,
                rate=f"{finished_now / max(elapsed, 1e-9):.2f}",
            )

        for chunk in batched(iter_loaded(pending(log), workers=workers), method.batch_size):
            good = [item for item in chunk if item.error is None]
            for item in chunk:
                if item.error is not None:
                    emit(_failure(item.ref, item.error, item.seconds))
            if not good:
                continue
            for loaded, prediction, seconds, error in _predict(method, good):
                if error is not None:
                    emit(_failure(loaded.ref, error, seconds))
                    continue
                try:
                    emit(writer.write(loaded, prediction, seconds + loaded.seconds))
                except (OSError, ValueError) as err:
                    emit(_failure(loaded.ref, f"writing the mask failed: {err}", seconds))

    summary.seconds = time.perf_counter() - start
    processed = summary.done + summary.failed
    summary.pairs_per_second = processed / summary.seconds if summary.seconds > 0 else 0.0
    _finish(out_dir, summary)
    return summary


def _predict(method: MaskMethod, batch: Sequence[Loaded]):
    """Predict a batch; when the batch raises, predict its pairs one by one so a single
    bad pair fails alone."""
    start = time.perf_counter()
    try:
        predictions = method.predict_batch([item.pair for item in batch])
        per_pair = (time.perf_counter() - start) / len(batch)
        for loaded, prediction in zip(batch, predictions):
            yield loaded, prediction, per_pair, None
        return
    except Exception as batch_error:  # noqa: BLE001 - isolate the culprit below
        if len(batch) == 1:
            yield (
                batch[0],
                None,
                time.perf_counter() - start,
                f"{type(batch_error).__name__}: {batch_error}",
            )
            return
    for loaded in batch:
        single = time.perf_counter()
        try:
            prediction = method.predict_batch([loaded.pair])[0]
        except Exception as err:  # noqa: BLE001 - recorded, the run goes on
            yield loaded, None, time.perf_counter() - single, f"{type(err).__name__}: {err}"
            continue
        yield loaded, prediction, time.perf_counter() - single, None


def _finish(out_dir: Path, summary: AnnotationSummary) -> None:
    """Write ``imdlbenco.json`` and ``summary.json`` from the records of every run."""
    latest = latest_records([out_dir / RECORDS])
    ok = [r for r in latest.values() if r.get("status") == "ok"]
    summary.total_ok = len(ok)
    summary.total_failed = sum(1 for r in latest.values() if r.get("status") == "failed")
    write_imdlbenco_json(
        out_dir / "imdlbenco.json", ((r["edited"], str(out_dir / r["mask"])) for r in ok)
    )
    scored = [r["gt"] for r in ok if r.get("gt")]
    if scored:
        scores = PixelScores()
        for g in scored:
            scores.add_counts(ConfusionCounts(g["tp"], g["fp"], g["fn"], g.get("tn", 0)))
        summary.scores = {**scores.summary(), "resolution": "native"}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
