"""Errors that name what went wrong and where.

Every error raised for bad input carries the item id (when known), the file or source
that was being read, and a sentence saying what is wrong, so a batch job can record it
and carry on.
"""

from __future__ import annotations


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
