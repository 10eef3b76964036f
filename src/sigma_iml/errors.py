"""Errors that name what went wrong and where.

Every error raised for bad input carries the item id (when known), the file or source
that was being read, and a sentence saying what is wrong, so a batch job can record it
and carry on.
"""

from __future__ import annotations

import errno


class SigmaError(Exception):
    """Base class of the errors this package raises on purpose."""


class ConfigError(SigmaError, ValueError):
    """A configuration, method spec or command-line value is invalid."""


class DataError(SigmaError):
    """Bad input data: a missing, corrupt or inconsistent file or record.

    ``item`` is the pair id (or a location such as ``manifest.jsonl:12`` when the id is
    unknown), ``source`` the file or record being read, ``reason`` what is wrong.
    """

    def __init__(self, reason: str, *, item: str | None = None, source: str | None = None):
        self.reason = reason
        self.item = item
        self.source = source
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.item is not None:
            where.append(f"item {self.item!r}")
        if self.source is not None:
            where.append(f"{self.source}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def with_item(self, item: str) -> DataError:
        """The same error, naming ``item`` if it did not name one yet."""
        if self.item is None:
            self.item = item
            self.args = (self._format(),)
        return self


class ImageDecodeError(DataError):
    """An image file is missing, unreadable, truncated, corrupt or too large."""


class ManifestError(DataError):
    """A manifest or dataset listing is malformed, or a row in it is."""


class IntentError(DataError):
    """A pair's intent region is unavailable: ``--intent mask`` on a pair whose dataset
    gives no intended region, or an intent map that does not fit the image."""


class RunError(SigmaError):
    """A fault of the run, not of a pair: the output disk is full or read-only, a model
    cannot be loaded, the cluster died. The run stops at once and records no pair as
    failed, so running the same command again resumes and does every pair left
    (docs/annotation.md, "Run-wide errors")."""


#: Errors of the output storage, not of the file being written: full, over quota,
#: read-only, failing.
RUN_WIDE_ERRNOS = frozenset(
    code
    for code in (
        getattr(errno, name, None) for name in ("ENOSPC", "EDQUOT", "EROFS", "EIO", "EACCES")
    )
    if code is not None
)


def is_run_fault(error: BaseException) -> bool:
    """Whether ``error`` is a fault of the run rather than of the pair being processed:
    a :class:`RunError`, a :class:`ConfigError` (an unloadable model, a bad setting),
    running out of memory, a missing module, or an ``OSError`` of the storage (see
    :data:`RUN_WIDE_ERRNOS`), also when it is the cause of another error. Errors of a
    pair's own data (:class:`DataError`) never are."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DataError):
            return False
        if isinstance(current, (RunError, ConfigError, MemoryError, ImportError)):
            return True
        if isinstance(current, OSError) and current.errno in RUN_WIDE_ERRNOS:
            return True
        current = current.__cause__
    return False
