"""What every annotation engine shares: the :class:`Engine` protocol, the numbered input
stream (:class:`PendingStream`), batched prediction that isolates a failing pair
(:func:`predict_tasks`) and the sharded record log.

Crash safety is the same for every engine, from the order of writes (see
:mod:`.records`): every file of a pair is renamed into place before its record line is
appended and fsynced, and one writer only appends. After ``kill -9`` a pair either has a
record and complete files, or has no record and is done again on resume (its files are
overwritten atomically).

Engines: :class:`~.local_engine.LocalEngine` (in this process, the default) and
:class:`~.ray_engine.RayEngine` (Ray Data).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..data.io import RecordLog
from ..data.pair import Pair, PairRef
from ..data.run_layout import RECORDS, shard_dir
from ..errors import DataError, RunError, is_run_fault
from ..methods import MaskMethod, Prediction
from .records import ItemWriter

#: Receives every record once it is on disk (the run's summary and progress bar).
Emit = Callable[[dict[str, Any]], None]


@dataclass
class Task:
    """One pair on its way through the pipeline."""

    ref: PairRef
    index: int
    shard: int
    pair: Pair | None = None
    prediction: Prediction | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class ShardedRecordLog:
    """Appends records to ``shards/<shard>/records.jsonl``. Pairs arrive roughly in
    input order, so only the newest few shards are kept open."""

    def __init__(self, out: Path, keep_open: int = 2):
        self.out = Path(out)
        self.keep_open = keep_open
        self._logs: dict[int, RecordLog] = {}

    def append(self, shard: int, record: dict[str, Any]) -> None:
        log = self._logs.get(shard)
        if log is None:
            log = RecordLog(shard_dir(self.out, shard) / RECORDS)
            self._logs[shard] = log
            while len(self._logs) > self.keep_open:
                oldest = min(self._logs)
                self._logs.pop(oldest).close()
        log.append(record)

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()


def run_error(stage: str, error: BaseException) -> RunError:
    """The :class:`RunError` that stops a run on ``error``, a fault of the run met while
    ``stage`` (e.g. "predicting", "writing the outputs")."""
    if isinstance(error, RunError):
        return error
    return RunError(
        f"{stage} failed on a fault of the run, not of a pair: {type(error).__name__}: "
        f"{error}. No pair was marked failed; fix the cause and run the same command "
        "again to resume"
    )


def predict_tasks(method: MaskMethod, tasks: Sequence[Task]) -> None:
    """Predict a batch of decoded tasks in place; when the batch raises, predict its
    pairs one by one so a single bad pair fails alone. A fault of the run (an unloadable
    model, a full disk: :func:`~sigma_iml.errors.is_run_fault`) is raised as a
    :class:`~sigma_iml.errors.RunError` instead of failing the pairs."""
    start = time.perf_counter()
    try:
        predictions = method.predict_batch([t.pair for t in tasks])
        if len(predictions) != len(tasks):
            raise ValueError(
                f"method {method.name} returned {len(predictions)} predictions for "
                f"{len(tasks)} pairs"
            )
        share = (time.perf_counter() - start) / len(tasks)
        for task, prediction in zip(tasks, predictions):
            task.prediction = prediction
            task.timings["predict"] = share
        return
    except Exception as batch_error:  # noqa: BLE001 - isolate the culprit below
        if is_run_fault(batch_error):
            raise run_error("predicting", batch_error) from batch_error
        if len(tasks) == 1:
            tasks[0].error = f"{type(batch_error).__name__}: {batch_error}"
            tasks[0].timings["predict"] = time.perf_counter() - start
            return
    for task in tasks:
        single = time.perf_counter()
        try:
            task.prediction = method.predict_batch([task.pair])[0]
        except Exception as err:  # noqa: BLE001 - recorded, the run goes on
            if is_run_fault(err):
                raise run_error("predicting", err) from err
            task.error = f"{type(err).__name__}: {err}"
        task.timings["predict"] = time.perf_counter() - single


@dataclass
class PendingStream:
    """Numbers the input stream, assigns shards, reports duplicate ids and skips the
    pairs a previous run finished. Used by every engine.

    Every item the reader yields gets the next index, so a pair's shard depends only on
    its position in the input, never on what was skipped. The ids seen so far are held
    in memory (~100 bytes each) to catch duplicates: the one thing that grows with the
    corpus.
    """

    refs: Iterable[PairRef]
    shard_size: int
    finished: set[str]
    on_skip: Callable[[PairRef], None]
    on_duplicate: Callable[[PairRef, str], None]
    input_error: str | None = None
    seen: set[str] = field(default_factory=set)

    def __iter__(self) -> Iterator[tuple[PairRef, int, int]]:
        iterator = iter(self.refs)
        index = -1
        while True:
            try:
                ref = next(iterator)
            except StopIteration:
                return
            except DataError as err:
                # A reader can only stop at a damaged file (a truncated shard); what it
                # yielded before is annotated, and the run reports where it stopped.
                self.input_error = str(err)
                return
            index += 1
            if ref.id in self.seen:
                self.on_duplicate(
                    ref,
                    f"duplicate id {ref.id!r} in the dataset; only its first occurrence is annotated",
                )
                continue
            self.seen.add(ref.id)
            if ref.id in self.finished:
                self.on_skip(ref)
                continue
            yield ref, index, index // self.shard_size


@dataclass
class AnnotationJob:
    """An annotation run as an engine sees it: every pair of ``pending`` through
    ``method``, ``batch_size`` pairs per model call; ``writer`` writes each pair's files
    and builds its record, which the engine appends to its shard's log and then hands
    to ``emit``."""

    pending: PendingStream
    method: MaskMethod
    writer: ItemWriter
    emit: Emit
    batch_size: int


class Engine(Protocol):
    """Runs an :class:`AnnotationJob`. Engine-only settings (threads, a cluster) live
    on the engine; what is written is the job's."""

    @property
    def name(self) -> str:
        """How ``summary.json`` names the engine."""
        ...

    def run(self, job: AnnotationJob) -> None: ...
