"""The in-process annotation engine (the default): a streaming, batched pipeline.

Three stages overlap, joined by bounded queues so memory stays flat however large the
corpus is::

    reader (main thread) -> decode (thread pool, ``workers``) -> model (main thread,
    batches of ``batch_size``) -> writer (background thread: masks, quality, records)

Decoding uses threads, not processes: Pillow and OpenCV release the GIL while decoding
and resizing, and on 1024x768 pairs with 2 workers threads were as fast as a process
pool for JPEG and faster for PNG, whose arrays a process pool must pickle back
(docs/annotation.md has the measurement). At most ``lookahead`` pairs are decoded ahead
of the model and at most ``writer_queue`` predictions wait for the writer; only the
writer thread appends records.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from ..config import ConfigModel
from ..data.loading import DEFAULT_LOOKAHEAD_BYTES, Loaded, batched, iter_loaded
from ..data.pair import PairRef
from ..errors import is_run_fault
from .engine import AnnotationJob, Emit, ShardedRecordLog, Task, predict_tasks, run_error
from .records import ItemWriter, failure_record


class LocalEngine(ConfigModel):
    """Annotates in this process (see the module docstring)."""

    name: ClassVar[str] = "local"

    #: Decoding threads (0: decode in the main thread).
    workers: int = Field(default=2, ge=0)
    #: Pairs decoded ahead of the model (default: ``max(8, 2 x batch)``).
    lookahead: int | None = Field(default=None, ge=1)
    #: Decoded bytes ahead of the model: no pair starts decoding while the pairs waiting
    #: hold this much (1 GiB; see :func:`~sigma_iml.data.loading.iter_loaded`). Large
    #: images are bounded by this, ordinary ones by ``lookahead``.
    lookahead_bytes: int = Field(default=DEFAULT_LOOKAHEAD_BYTES, ge=1)
    #: Predictions waiting for the writer thread (default: ``max(16, 4 x batch)``).
    writer_queue: int | None = Field(default=None, ge=1)

    def run(self, job: AnnotationJob) -> None:
        """Annotate every pending pair; records go to ``job.emit`` once on disk."""
        size = max(1, job.batch_size)
        lookahead = self.lookahead or max(8, 2 * size)
        positions: deque[tuple[int, int]] = deque()

        def refs() -> Iterator[PairRef]:
            for ref, index, shard in job.pending:
                # iter_loaded keeps input order, so positions pop in step with its output.
                positions.append((index, shard))
                yield ref

        writer = BackgroundWriter(job.writer, job.emit, self.writer_queue or max(16, 4 * size))
        try:
            loaded = iter_loaded(
                refs(),
                workers=self.workers,
                lookahead=lookahead,
                lookahead_bytes=self.lookahead_bytes,
            )
            for chunk in batched(loaded, size):
                tasks = [_task(item, *positions.popleft()) for item in chunk]
                decoded = [t for t in tasks if t.error is None]
                if decoded:
                    predict_tasks(job.method, decoded)
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


class BackgroundWriter:
    """A thread that writes finished tasks (files, then the record) in arrival order.

    ``emit`` is called with every record after it is on disk. A fault of the run in the
    thread (the disk is full, say) stops it with no record for the pair; :meth:`check`
    re-raises it in the main thread as a :class:`~sigma_iml.errors.RunError`, so the run
    stops loudly and a rerun does the pair.
    """

    _STOP = object()

    def __init__(
        self,
        item_writer: ItemWriter,
        emit: Emit,
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
            raise run_error("writing the outputs", self._error) from self._error

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
            if is_run_fault(err):
                raise
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
