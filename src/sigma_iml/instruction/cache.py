"""A persistent cache of parsed instructions, shared by processes.

Editing corpora repeat instructions ("remove the watermark" appears thousands of times in
PromptfixData), and the 0.5B LLM costs ~10 s per instruction on a CPU: a cache hit costs
well under a millisecond. The cache is one sqlite3 file in WAL mode (readers never block
the writer) with a busy timeout, so several annotation workers may read and write it at
once. Rows are keyed by the parser's identity (``rules-v1``, ``llm:Qwen/...``) *and* the
normalised instruction, so switching parser never returns another parser's answer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from .edit_tuple import EditTuple

#: How long a writer waits for another process's lock before failing, in milliseconds.
BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS parses (
    parser TEXT NOT NULL,
    instruction TEXT NOT NULL,
    original_concept TEXT NOT NULL,
    edited_concept TEXT NOT NULL,
    action TEXT NOT NULL,
    method TEXT NOT NULL,
    fallback TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (parser, instruction)
)
"""


def normalise_instruction(text: str) -> str:
    """The cache key of an instruction: lower case, whitespace collapsed, surrounding
    quotes and trailing sentence punctuation dropped ("Remove the cat. " and
    "remove  the cat" are one key). Parsers see the text as given."""
    key = " ".join(text.lower().split()).strip("\"'“”` ")
    return key.rstrip(".!;").strip()


class InstructionCache:
    """``get``/``put`` of parse results in a sqlite3 file; one connection per process and
    thread (sqlite connections must not cross a fork or a thread)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connect()  # create the schema now: errors surface at construction

    def _connect(self) -> sqlite3.Connection:
        owner = getattr(self._local, "pid", None)
        connection = getattr(self._local, "connection", None)
        if connection is not None and owner == os.getpid():
            return connection
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute(_SCHEMA)
        self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def get_many(
        self, parser: str, instructions: list[str]
    ) -> dict[str, tuple[EditTuple, str, str | None]]:
        """``{normalised instruction: (tuple, method, fallback)}`` for the cached ones."""
        keys = sorted({normalise_instruction(text) for text in instructions})
        found: dict[str, tuple[EditTuple, str, str | None]] = {}
        connection = self._connect()
        # sqlite limits bound parameters per statement (999 in old builds): chunk.
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = connection.execute(
                "SELECT instruction, original_concept, edited_concept, action, method, fallback "
                f"FROM parses WHERE parser = ? AND instruction IN ({','.join('?' * len(chunk))})",
                [parser, *chunk],
            ).fetchall()
            for key, original, edited, action, method, fallback in rows:
                found[key] = (EditTuple(original, edited, action), method, fallback)
        return found

    def get(self, parser: str, instruction: str) -> tuple[EditTuple, str, str | None] | None:
        return self.get_many(parser, [instruction]).get(normalise_instruction(instruction))

    def put_many(self, parser: str, entries: list[tuple[str, EditTuple, str, str | None]]) -> None:
        """Store ``(instruction, tuple, method, fallback)`` rows in one transaction."""
        if not entries:
            return
        connection = self._connect()
        now = time.time()
        rows = [
            (
                parser,
                normalise_instruction(text),
                edit.original_concept,
                edit.edited_concept,
                edit.action,
                method,
                fallback,
                now,
            )
            for text, edit, method, fallback in entries
        ]
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "INSERT OR REPLACE INTO parses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM parses").fetchone()[0])

    def export(self) -> list[dict[str, str | None]]:
        """All rows, for inspection."""
        rows = self._connect().execute(
            "SELECT parser, instruction, original_concept, edited_concept, action, method, "
            "fallback FROM parses ORDER BY parser, instruction"
        )
        keys = ("parser", "instruction", *EditTuple.__dataclass_fields__, "method", "fallback")
        return [dict(zip(keys, row)) for row in rows]

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            connection.close()
        self._local.connection = None

    def __repr__(self) -> str:
        return f"InstructionCache({str(self.path)!r})"

    def __getstate__(self):  # picklable for worker processes: reconnect on the other side
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]
        self._local = threading.local()
