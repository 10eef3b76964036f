"""The Ray Data annotation engine (``--engine ray``): the same job on a Ray cluster.

Per window of pending pairs the driver builds one Ray Dataset and streams it through::

    decode (CPU tasks) -> model (an actor pool: each actor builds the method once;
    one GPU per actor when the cluster has GPUs) -> write (CPU tasks: masks, copies,
    quality, the record as JSON)

and appends the records it gets back to the shard logs itself: the driver is the only
process appending, so the crash-safety argument of the in-process engine holds unchanged
(files renamed into place by a write task before the driver appends their record).

The driver reads the input stream, numbers it and skips finished pairs exactly as the
in-process engine does (:class:`~.engine.PendingStream`), ``window`` pairs at a time, so
its memory is bounded by one window of refs (paths, or encoded bytes for Parquet and
WebDataset inputs). The model actors are rebuilt for each window; the default window is
large enough for model loading to be a small share of its time. On a multi-node cluster
the run folder (and input files given by path) must be on storage every node sees.

Methods are named by their spec (``NAME[:key=value]``) and built inside the actors, so
only registered methods whose spec rebuilds them can run here. Ray is imported only when this engine runs.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from ..config import ConfigModel
from ..errors import ConfigError, RunError, SigmaError, is_run_fault
from .engine import (
    AnnotationJob,
    PendingStream,
    ShardedRecordLog,
    Task,
    predict_tasks,
    run_error,
)
from .records import ItemWriter, failure_record

#: Pairs per Ray Dataset: the actor pool (and its model) is built once per window.
DEFAULT_WINDOW = 2048
#: Rows per decode / write task.
CPU_BATCH = 8


def _import_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate extra
    except ImportError as err:
        raise ConfigError(
            "--engine ray needs Ray Data: pip install 'sigma-iml[ray]' (or 'ray[data]')"
        ) from err
    return ray


def _decode_batch(batch: dict[str, np.ndarray]) -> dict[str, list]:
    """CPU task: decode each ref into a pickled :class:`Pair`, or say why it failed."""
    from ..data.loading import _load_one
    from ..data.pair import load_pair

    pairs, errors, seconds = [], [], []
    for blob in batch["ref"]:
        loaded = _load_one(pickle.loads(blob), load_pair)
        pairs.append(b"" if loaded.pair is None else pickle.dumps(loaded.pair, protocol=5))
        errors.append("" if loaded.error is None else str(loaded.error))
        seconds.append(loaded.seconds)
    return {
        "index": batch["index"],
        "shard": batch["shard"],
        "ref": batch["ref"],
        "pair": pairs,
        "error": errors,
        "decode": seconds,
    }


class _ModelActor:
    """Holds one copy of the method for the actor's lifetime and predicts batches."""

    def __init__(self, spec: str):
        from ..methods import build_method

        self.method = build_method(spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        tasks = []
        for ref, pair, error in zip(batch["ref"], batch["pair"], batch["error"]):
            task = Task(pickle.loads(ref), 0, 0)
            if error:
                task.error = str(error)
            else:
                task.pair = pickle.loads(pair)
            tasks.append(task)
        decoded = [t for t in tasks if t.error is None]
        if decoded:
            predict_tasks(self.method, decoded)
        return {
            "index": batch["index"],
            "shard": batch["shard"],
            "ref": batch["ref"],
            "pair": batch["pair"],
            "decode": batch["decode"],
            "prediction": [
                b"" if t.prediction is None else pickle.dumps(t.prediction, protocol=5)
                for t in tasks
            ],
            "error": [t.error or "" for t in tasks],
            "predict": [t.timings.get("predict", 0.0) for t in tasks],
        }


def _write_batch(batch: dict[str, np.ndarray], writer: ItemWriter) -> dict[str, list]:
    """CPU task: write each pair's files and return its record as JSON."""
    shards, records = [], []
    for i in range(len(batch["index"])):
        ref = pickle.loads(batch["ref"][i])
        index, shard = int(batch["index"][i]), int(batch["shard"][i])
        timings = {"decode": float(batch["decode"][i]), "predict": float(batch["predict"][i])}
        error = str(batch["error"][i])
        if error:
            record = failure_record(ref, index, shard, error, timings)
        else:
            try:
                record = writer.write(
                    ref,
                    pickle.loads(batch["pair"][i]),
                    pickle.loads(batch["prediction"][i]),
                    index,
                    shard,
                    timings,
                )
            except (OSError, ValueError) as err:
                if is_run_fault(err):
                    raise run_error("writing the outputs", err) from err
                record = failure_record(
                    ref, index, shard, f"writing the outputs failed: {err}", timings
                )
        shards.append(shard)
        records.append(json.dumps(record, ensure_ascii=False, default=str))
    return {"shard": shards, "record": records}


def _windows(pending: PendingStream, size: int) -> Iterator[list[dict[str, Any]]]:
    window: list[dict[str, Any]] = []
    for ref, index, shard in pending:
        window.append({"index": index, "shard": shard, "ref": pickle.dumps(ref, protocol=5)})
        if len(window) >= size:
            yield window
            window = []
    if window:
        yield window


class RayEngine(ConfigModel):
    """Annotates on a Ray cluster (see the module docstring)."""

    name: ClassVar[str] = "ray"

    #: Cluster to join (``auto``, ``ray://host:10001``, ...); default: the cluster already
    #: initialised in this process, else a local one started (and stopped) for the run.
    address: str | None = None
    #: Model actors (None or 0: one per GPU, else one).
    actors: int | None = Field(default=None, ge=0)
    #: Pending pairs per Ray Dataset (default :data:`DEFAULT_WINDOW`).
    window: int | None = Field(default=None, ge=1)
    #: CPUs of a local cluster started here (default: every core).
    num_cpus: int | None = Field(default=None, ge=1)

    def run(self, job: AnnotationJob) -> None:
        """Annotate every pending pair; records go to ``job.emit`` once on disk. The
        actors rebuild the method from its spec."""
        ray = _import_ray()
        started_here = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                # Worker processes read the variable too, not only this driver.
                "runtime_env": {"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}},
            }
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.num_cpus or os.cpu_count() or 2, **options)
            started_here = True
        try:
            self._run(ray, job)
        except Exception as err:
            stopped = _stopped(ray, err)
            if stopped is err:
                raise
            raise stopped from err
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray: Any, job: AnnotationJob) -> None:
        from ray.data import ActorPoolStrategy, DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False  # our own bar reports progress
        gpus = int(ray.cluster_resources().get("GPU", 0))
        pool_size = self.actors or max(1, gpus)
        if gpus and pool_size > gpus:
            raise ConfigError(f"{pool_size} model actors asked for, the cluster has {gpus} GPUs")
        spec = job.method.spec()
        writer_for_tasks = replace(job.writer, out=Path(job.writer.out).resolve())
        log = ShardedRecordLog(job.writer.out, keep_open=4)
        try:
            for rows in _windows(job.pending, self.window or DEFAULT_WINDOW):
                dataset = (
                    ray.data.from_items(rows)
                    .map_batches(_decode_batch, batch_size=CPU_BATCH, num_cpus=1)
                    .map_batches(
                        _ModelActor,
                        fn_constructor_kwargs={"spec": spec},
                        batch_size=job.batch_size,
                        compute=ActorPoolStrategy(size=pool_size),
                        num_gpus=1 if gpus else 0,
                        num_cpus=0 if gpus else 1,
                    )
                    .map_batches(
                        _write_batch,
                        fn_kwargs={"writer": writer_for_tasks},
                        batch_size=CPU_BATCH,
                        num_cpus=1,
                    )
                )
                for row in dataset.iter_rows():
                    record = json.loads(row["record"])
                    log.append(int(row["shard"]), record)
                    job.emit(record)
        finally:
            log.close()


def _stopped(ray: Any, error: Exception) -> Exception:
    """What a failed Ray run raises: the :class:`~sigma_iml.errors.RunError` raised in a
    task (Ray wraps it), a :class:`~sigma_iml.errors.RunError` saying the cluster failed
    for Ray's own errors (a dead raylet, node or actor, a lost object), else ``error``.
    Records already appended stay; a rerun resumes after them."""
    if isinstance(error, SigmaError) and not isinstance(error, ray.exceptions.RayError):
        return error  # raised here, not in a task: already says what is wrong
    fault: BaseException | None = None
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if is_run_fault(current):
            fault = current  # the innermost one: Ray's wrappers only repeat it
        current = getattr(current, "cause", None) or current.__cause__
    if fault is not None:
        if type(fault) is RunError:
            return RunError(str(fault))
        return run_error("annotating on Ray", fault)
    if isinstance(error, (ray.exceptions.RayError, ConnectionError)):
        return RunError(
            f"the Ray cluster failed: {type(error).__name__}: {error}. Pairs whose record "
            "was written are kept, no pair was marked failed; run the same command again "
            "to resume (on a restarted cluster if this one is gone)"
        )
    return error


def ray_available() -> bool:
    """Whether Ray Data can be imported (without importing it)."""
    import importlib.util

    return (
        importlib.util.find_spec("ray") is not None
        and importlib.util.find_spec("ray.data") is not None
    )
