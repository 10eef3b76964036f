"""``annotate``: masks for every pair of a dataset, sharded, resumable after ``kill -9``.

Per pair, in its shard ``DIR/shards/<nnnnn>/`` (:mod:`sigma_iml.data.run_layout`):
``masks/<id>.png`` (0/255, the edited image's size) and one line in ``records.jsonl``
(id, status, paths, instruction, parsed instruction, quality scores, per-stage timings,
error). At the end of every run: ``DIR/imdlbenco.json`` and the other IMDL-BenCo files (:mod:`.export`,
filtered by ``min_quality``) and ``DIR/summary.json``.

Running the same command again skips finished pairs (failed ones too, unless
``retry_failed``); a pair whose record says ``ok`` but whose mask is gone is done again.

What is written is an :class:`~.options.AnnotateOptions`; how the pairs are computed is
an :class:`~.engine.Engine`: in this process by default (:class:`~.local_engine.LocalEngine`)
or on Ray Data (:class:`~.ray_engine.RayEngine`)::

    annotate(refs, "pixdiff-otsu", "runs/a", shard_size=1000)
    annotate(refs, method, "runs/b", AnnotateOptions(save_probability=True),
             engine=RayEngine(address="auto"))
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data.io import atomic_write_text
from ..data.pair import PairRef
from ..data.run_layout import SUMMARY_FILE
from ..evaluation.metrics import ConfusionCounts, PixelScores
from ..methods import MaskMethod, build_method
from .engine import AnnotationJob, Engine, PendingStream
from .export import export_imdlbenco
from .layout import RunInfo, RunLock, iter_latest_records, remove_stale_temporaries
from .local_engine import LocalEngine
from .options import AnnotateOptions
from .quality import DEFAULT_QUALITY_METRIC, QualityMetric
from .records import ItemWriter, PairAnalysis

#: How many failures ``summary.json`` lists (all of them are in the records).
MAX_LISTED_FAILURES = 100


@dataclass
class AnnotationSummary:
    out: str
    method: str
    engine: str = "local"
    shard_size: int = 0
    #: This run: pairs annotated, failed, and skipped as finished by an earlier run.
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    pairs_per_second: float = 0.0
    #: This run's time per stage, summed over pairs (stages overlap, so the sum of the
    #: stages may exceed ``seconds``).
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: The reader stopped at a damaged input file (e.g. a truncated shard): what it said.
    input_error: str | None = None
    #: Over every run of this folder.
    total_ok: int = 0
    total_failed: int = 0
    exported: int = 0
    min_quality: float | None = None
    quality_metric: QualityMetric = DEFAULT_QUALITY_METRIC
    #: Scores over every finished item that had a ground-truth mask (None if none had).
    scores: dict[str, Any] | None = None
    #: Over every finished item annotated with ``--faithfulness`` (None if none was):
    #: pairs, ``faithful``, ``side_effect``, ``not_executed`` (docs/faithfulness.md).
    faithfulness: dict[str, int] | None = None
    #: What precision each model stage of this run ran in (``network``, ``parser``,
    #: ``grounding``: ``bf16`` or ``fp32``; docs/design.md "Device and precision"); None
    #: for methods without models.
    precision: dict[str, str] | None = None
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def annotate(
    refs: Iterable[PairRef],
    method: MaskMethod | str,
    out: str | os.PathLike,
    options: AnnotateOptions | None = None,
    *,
    engine: Engine | None = None,
    progress: bool = True,
    total: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    dataset: dict[str, Any] | None = None,
    analyses: Iterable[PairAnalysis] = (),
    **settings: Any,
) -> AnnotationSummary:
    """Annotate ``refs`` with ``method`` (an instance, or a spec ``NAME[:k=v]``) into
    ``out``; see the module docstring. ``settings`` are fields of
    :class:`~.options.AnnotateOptions` that replace those of ``options`` (a shorthand:
    ``annotate(refs, method, out, shard_size=1000)``). ``engine`` defaults to
    :class:`~.local_engine.LocalEngine`; ``total`` (the number of pairs, when known)
    gives the progress bar an ETA; ``on_record`` sees every record once it is on disk;
    ``analyses`` are per-pair steps whose fields join each record (e.g.
    :class:`sigma_iml.faithfulness.FaithfulnessAnalysis`, docs/faithfulness.md).
    ``dataset`` names the input in ``run.json``
    (:func:`~sigma_iml.data.readers.dataset_identity`); a folder holding another
    method's or dataset's run is refused with a :class:`~sigma_iml.errors.ConfigError`."""
    options = (options or AnnotateOptions()).replace(**settings)
    engine = LocalEngine() if engine is None else engine
    # Built here for every engine, so records name the method by its full spec (every
    # parameter, defaults included) whichever engine ran; Ray actors rebuild it from that.
    built = method if isinstance(method, MaskMethod) else build_method(method)
    spec = built.spec()

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(out_dir):
        remove_stale_temporaries(out_dir)
        info = RunInfo.load_or_create(out_dir, options.shard_size, spec, dataset)
        finished = _finished_ids(out_dir, options.retry_failed)
        summary = AnnotationSummary(
            out=str(out_dir),
            method=spec,
            engine=engine.name,
            shard_size=info.shard_size,
            min_quality=options.min_quality,
            quality_metric=options.quality_metric,
        )
        start = time.perf_counter()
        with _Progress(total, progress) as bar:

            def emit(record: dict[str, Any]) -> None:
                if record["status"] == "ok":
                    summary.done += 1
                else:
                    summary.failed += 1
                    if len(summary.failures) < MAX_LISTED_FAILURES:
                        summary.failures.append({"id": record["id"], "error": record["error"]})
                for stage, seconds in (record.get("timings") or {}).items():
                    summary.stage_seconds[stage] = summary.stage_seconds.get(stage, 0.0) + seconds
                if record.get("precision"):
                    summary.precision = {**(summary.precision or {}), **record["precision"]}
                if on_record is not None:
                    on_record(record)
                bar.advance(summary, start)

            def on_skip(ref: PairRef) -> None:
                summary.skipped += 1
                bar.advance(summary, start)

            def on_duplicate(ref: PairRef, error: str) -> None:
                # The first occurrence keeps its record; the duplicate is reported only.
                summary.failed += 1
                if len(summary.failures) < MAX_LISTED_FAILURES:
                    summary.failures.append({"id": ref.id, "error": error})
                bar.advance(summary, start)

            pending = PendingStream(refs, info.shard_size, finished, on_skip, on_duplicate)
            item_writer = ItemWriter(
                out_dir,
                spec,
                options.save_probability,
                options.save_originals,
                options.save_intermediates,
                tuple(analyses),
            )
            batch_size = options.batch_size or built.batch_size
            engine.run(AnnotationJob(pending, built, item_writer, emit, batch_size))
            bar.advance(summary, start, force=True)
        summary.input_error = pending.input_error
        summary.seconds = time.perf_counter() - start
        processed = summary.done + summary.failed
        summary.pairs_per_second = processed / summary.seconds if summary.seconds > 0 else 0.0
        summary.stage_seconds = {k: round(v, 6) for k, v in summary.stage_seconds.items()}
        _finish(out_dir, summary, negatives=options.negatives)
    return summary


class _Progress:
    """A rich progress bar with throughput and ETA (ETA needs ``total``)."""

    def __init__(self, total: int | None, enabled: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]annotate"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} pairs/s  failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("annotate", total=total, rate="-", failed=0)
        self._last = 0.0

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def advance(self, summary: AnnotationSummary, start: float, force: bool = False) -> None:
        now = time.perf_counter()
        if now - self._last < 0.1 and not force:  # a million redraws would cost more than the work
            return
        self._last = now
        processed = summary.done + summary.failed
        self.progress.update(
            self.task,
            completed=processed + summary.skipped,
            rate=f"{processed / max(now - start, 1e-9):.2f}",
            failed=summary.failed,
        )


def _finished_ids(out_dir: Path, retry_failed: bool) -> set[str]:
    """Ids a resumed run skips: ``ok`` with the mask on disk, and ``failed`` unless
    retried. Only ids are kept, one shard of records in memory at a time."""
    finished: set[str] = set()
    for record in iter_latest_records(out_dir):
        status = record.get("status")
        if status == "ok" and (out_dir / str(record.get("mask"))).is_file():
            finished.add(str(record["id"]))
        elif status == "failed" and not retry_failed:
            finished.add(str(record["id"]))
    return finished


def _finish(out_dir: Path, summary: AnnotationSummary, *, negatives: bool) -> None:
    """Write the IMDL-BenCo files and ``summary.json`` from the records of every run."""
    scores = PixelScores()
    scored = 0
    flags = {"n": 0, "faithful": 0, "side_effect": 0, "not_executed": 0}
    for record in iter_latest_records(out_dir):
        if record.get("status") == "failed":
            summary.total_failed += 1
            continue
        summary.total_ok += 1
        faithfulness = record.get("faithfulness")
        if isinstance(faithfulness, dict):
            side_effect = bool(faithfulness.get("side_effect"))
            not_executed = bool(faithfulness.get("not_executed"))
            flags["n"] += 1
            flags["side_effect"] += side_effect
            flags["not_executed"] += not_executed
            flags["faithful"] += not (side_effect or not_executed)
        g = record.get("gt")
        if g:
            scores.add_counts(ConfusionCounts(g["tp"], g["fp"], g["fn"], g.get("tn", 0)))
            scored += 1
    if flags["n"]:
        summary.faithfulness = flags
    if scored:
        summary.scores = {**scores.summary(), "resolution": "native"}
    result = export_imdlbenco(
        out_dir,
        out_dir,
        min_quality=summary.min_quality,
        metric=summary.quality_metric,
        negatives=negatives,
    )
    summary.exported = result.manipulated
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=2) + "\n")
