"""The in-process annotation engine: a streaming, batched pipeline in one process.

Three stages overlap, joined by bounded queues so memory stays flat however large the
corpus is::

    reader (main thread) -> decode (thread pool, ``workers``) -> model (main thread,
    batches of ``batch_size``) -> writer (background thread: masks, quality, records)

Decoding uses threads, not processes: Pillow and OpenCV release the GIL while decoding
and resizing, and measured here (1024x768 pairs, 2 workers) threads were as fast as a
process pool for JPEG and faster for PNG, whose arrays a process pool must pickle back
(docs/annotation.md). At most ``lookahead`` pairs are decoded ahead of the model and at
most ``writer_queue`` predictions wait for the writer.

Crash safety comes from the order of writes (see :mod:`.records`): every file of a pair
is renamed into place before its record line is appended and fsynced, and only the
writer thread appends. After ``kill -9`` a pair either has a record and complete files,
or has no record and is done again on resume (its files are overwritten atomically).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.io import RecordLog
from ..data.loading import Loaded, batched, iter_loaded
from ..data.pair import Pair, PairRef
from ..errors import DataError
from ..methods import MaskMethod, Prediction
from .layout import RECORDS, shard_dir
from .records import ItemWriter, failure_record


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


class BackgroundWriter:
    """A thread that writes finished tasks (files, then the record) in arrival order.

    ``emit`` is called with every record after it is on disk. An unexpected error in the
    thread (the record log's disk is full, say) stops it; :meth:`check` re-raises it in
    the main thread so the run fails loudly instead of dropping results.
    """

    _STOP = object()

    def __init__(
        self,
        item_writer: ItemWriter,
        emit: Callable[[dict[str, Any]], None],
        max_queued: int,
    ):
        self.item_writer = item_writer
        self.emit = emit
        self.log = ShardedRecordLog(item_writer.out)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_queued))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sigma-writer", daemon=True)
        self._thread.start()

    def put(self, task: Task) -> None:
        while True:
            self.check()
            try:
                self._queue.put(task, timeout=0.5)
                return
            except queue.Full:
                continue

    def check(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the writer thread failed: {self._error}") from self._error

    def close(self) -> None:
        """Write everything queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()
        self.log.close()
        self.check()

    def _record(self, task: Task) -> dict[str, Any]:
        if task.error is not None:
            return failure_record(task.ref, task.index, task.shard, task.error, task.timings)
        try:
            return self.item_writer.write(
                task.ref, task.pair, task.prediction, task.index, task.shard, task.timings
            )
        except (OSError, ValueError) as err:
            return failure_record(
                task.ref, task.index, task.shard, f"writing the outputs failed: {err}", task.timings
            )

    def _run(self) -> None:
        try:
            while True:
                task = self._queue.get()
                if task is self._STOP:
                    return
                record = self._record(task)
                self.log.append(task.shard, record)
                self.emit(record)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread by check()
            self._error = err
            # Keep draining so a producer blocked on put() notices the error.
            while True:
                try:
                    if self._queue.get(timeout=0.1) is self._STOP:
                        return
                except queue.Empty:
                    if not threading.main_thread().is_alive():
                        return


def predict_tasks(method: MaskMethod, tasks: Sequence[Task]) -> None:
    """Predict a batch of decoded tasks in place; when the batch raises, predict its
    pairs one by one so a single bad pair fails alone."""
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
        if len(tasks) == 1:
            tasks[0].error = f"{type(batch_error).__name__}: {batch_error}"
            tasks[0].timings["predict"] = time.perf_counter() - start
            return
    for task in tasks:
        single = time.perf_counter()
        try:
            task.prediction = method.predict_batch([task.pair])[0]
        except Exception as err:  # noqa: BLE001 - recorded, the run goes on
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


def run_local(
    pending: PendingStream,
    method: MaskMethod,
    item_writer: ItemWriter,
    emit: Callable[[dict[str, Any]], None],
    *,
    workers: int = 2,
    batch_size: int | None = None,
    lookahead: int | None = None,
    writer_queue: int | None = None,
) -> None:
    """Annotate every pending pair in this process; records go to ``emit`` once on disk."""
    size = max(1, batch_size or method.batch_size)
    lookahead = lookahead or max(8, 2 * size)
    positions: deque[tuple[int, int]] = deque()

    def refs() -> Iterator[PairRef]:
        for ref, index, shard in pending:
            # iter_loaded keeps input order, so positions pop in step with its output.
            positions.append((index, shard))
            yield ref

    writer = BackgroundWriter(item_writer, emit, writer_queue or max(16, 4 * size))
    try:
        for chunk in batched(iter_loaded(refs(), workers=workers, lookahead=lookahead), size):
            tasks = [_task(loaded, *positions.popleft()) for loaded in chunk]
            decoded = [t for t in tasks if t.error is None]
            if decoded:
                predict_tasks(method, decoded)
            for task in tasks:
                writer.put(task)
    finally:
        writer.close()


def _task(loaded: Loaded, index: int, shard: int) -> Task:
    task = Task(loaded.ref, index, shard, pair=loaded.pair)
    task.timings["decode"] = loaded.seconds
    if loaded.error is not None:
        task.error = str(loaded.error)
    return task
