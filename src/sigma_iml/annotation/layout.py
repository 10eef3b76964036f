"""Reading an annotation run back, and keeping it consistent while it is written: the
shard size, method and dataset stored in ``run.json``, the folder's lock, stale
temporaries. The folder's
names are in :mod:`sigma_iml.data.run_layout`.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.io import atomic_write_text, read_records
from ..data.run_layout import (
    EDITED_COPIES,
    LOCK_FILE,
    MASKS,
    ORIGINAL_COPIES,
    PANELS,
    PROBABILITIES,
    RECORDS,
    RUN_FILE,
    SHARDS,
)
from ..errors import ConfigError

#: Shard size when a new run does not ask for one: ~10k files per folder keeps listings
#: fast on every file system, and a shard's records.jsonl is a few MB.
DEFAULT_SHARD_SIZE = 10_000
#: Sub-folders of a shard that hold files written through ``atomic_write_bytes``.
SHARD_FILE_FOLDERS = (MASKS, PROBABILITIES, EDITED_COPIES, ORIGINAL_COPIES, PANELS)


def records_paths(out: Path) -> list[Path]:
    """Every shard's ``records.jsonl``, in shard order."""
    root = Path(out) / SHARDS
    if not root.is_dir():
        return []
    return sorted(p / RECORDS for p in root.iterdir() if p.is_dir() and (p / RECORDS).is_file())


def iter_run_records(out: Path) -> Iterator[dict[str, Any]]:
    """Every record line of a run, shard by shard, oldest first (a retried pair appears
    once per attempt; :func:`iter_latest_records` keeps the newest)."""
    for path in records_paths(out):
        yield from read_records(path)


def iter_latest_records(out: Path) -> Iterator[dict[str, Any]]:
    """The newest record of every pair, one shard in memory at a time, in input order.

    A pair's shard is fixed by its input position, so all its records are in one
    shard's file and the newest is the last one there."""
    for path in records_paths(out):
        latest: dict[str, dict[str, Any]] = {}
        for record in read_records(path):
            latest[str(record["id"])] = record
        yield from sorted(latest.values(), key=lambda r: (r.get("index", 0), str(r["id"])))


@dataclass
class RunInfo:
    """``run.json``: what must stay the same when a run is resumed. The shard size
    decides which folder each pair lives in; the method and the dataset decide what the
    finished pairs mean, so a run of another method or dataset into the folder is
    refused rather than skipping "finished" pairs whose masks came from something else.

    ``dataset`` is what :func:`~sigma_iml.data.readers.dataset_identity` says (path,
    format, reader options), or ``None`` when the caller gave bare refs."""

    shard_size: int
    method: str
    dataset: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"shard_size": self.shard_size, "method": self.method, "dataset": self.dataset}

    @classmethod
    def load_or_create(
        cls,
        out: Path,
        shard_size: int | None,
        method: str,
        dataset: dict[str, Any] | None = None,
    ) -> RunInfo:
        path = Path(out) / RUN_FILE
        if not path.is_file():
            size = DEFAULT_SHARD_SIZE if shard_size is None else shard_size
            if size < 1:
                raise ConfigError(f"shard size must be at least 1, got {size}")
            info = cls(size, method, dataset)
            atomic_write_text(path, json.dumps(info.to_dict(), indent=2) + "\n")
            return info
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            stored_size = int(stored["shard_size"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path} cannot be read ({err}); is {out} a run folder?") from None
        if shard_size is not None and shard_size != stored_size:
            raise ConfigError(
                f"{out} was started with --shard-size {stored_size}; a resumed run must "
                f"keep it (got {shard_size}). Leave the option out to use the stored value"
            )
        if not any(records.stat().st_size > 0 for records in records_paths(Path(out))):
            # Nothing written yet (e.g. a run stopped by a run-wide error before its first
            # pair): the folder holds no masks to protect, so this run's identity replaces it.
            info = cls(stored_size, method, dataset)
            atomic_write_text(path, json.dumps(info.to_dict(), indent=2) + "\n")
            return info
        # Folders written before run.json named one method kept a list of methods.
        methods = [stored["method"]] if stored.get("method") else list(stored.get("methods", []))
        if methods and method not in methods:
            raise ConfigError(
                f"{out} holds the masks of method {' / '.join(methods)}; this run is method "
                f"{method}. Give this run its own --out folder (resuming a run needs the same "
                "method and parameters)"
            )
        stored_dataset = stored.get("dataset")
        if dataset is not None and stored_dataset and stored_dataset != dataset:
            raise ConfigError(
                f"{out} holds the masks of dataset {_describe(stored_dataset)}; this run reads "
                f"{_describe(dataset)}. Give this run its own --out folder (resuming a run "
                "needs the same dataset, format and reader options)"
            )
        info = cls(stored_size, methods[0] if methods else method, stored_dataset or dataset)
        if info.to_dict() != stored:
            atomic_write_text(path, json.dumps(info.to_dict(), indent=2) + "\n")
        return info


def _describe(dataset: dict[str, Any]) -> str:
    details = ", ".join(f"{k} {v}" for k, v in dataset.items() if k != "path")
    return f"{dataset.get('path')} ({details})" if details else str(dataset.get("path"))


class RunLock:
    """An exclusive lock on a run folder: two processes appending to one run would
    interleave records and race on mask files. ``flock`` is released by the kernel when
    the holder dies, so a killed run never leaves a stale lock."""

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another annotation run is writing to {self.path.parent}; wait for it to end"
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def remove_stale_temporaries(out: Path) -> int:
    """Delete the hidden ``.<name>.*.tmp`` files a killed run left behind (an atomic
    write interrupted before its rename). Safe only under :class:`RunLock`."""
    removed = 0
    root = Path(out) / SHARDS
    if not root.is_dir():
        return 0
    for shard in root.iterdir():
        for folder in (shard / name for name in SHARD_FILE_FOLDERS):
            if not folder.is_dir():
                continue
            for stale in folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
                removed += 1
    return removed
