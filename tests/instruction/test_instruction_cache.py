"""The persistent parse cache: keys, parser identity, and several processes at once."""

from __future__ import annotations

import multiprocessing
import sqlite3

from sigma_iml.instruction.cache import InstructionCache, normalise_instruction
from sigma_iml.instruction.edit_tuple import EditTuple
from sigma_iml.instruction.parser import CachedParser
from sigma_iml.instruction.rules import RuleParser


def test_key_normalisation():
    assert normalise_instruction("  Remove  the Cat. ") == normalise_instruction("remove the cat")
    assert normalise_instruction('"add a dog!"') == "add a dog"
    assert normalise_instruction("remove the cat") != normalise_instruction("remove the cats")


def test_entries_are_keyed_by_parser_identity(tmp_path):
    cache = InstructionCache(tmp_path / "c.sqlite")
    cache.put_many("llm:a", [("Remove the cat.", EditTuple("cat", "null", "remove"), "llm", None)])
    assert cache.get("llm:a", "remove the cat") == (EditTuple("cat", "null", "remove"), "llm", None)
    assert cache.get("llm:b", "remove the cat") is None
    assert cache.get("rules-v1", "remove the cat") is None
    # Persistent: a new object on the same file sees it.
    assert len(InstructionCache(tmp_path / "c.sqlite")) == 1


class _CountingParser(RuleParser):
    name = "counting"

    def __init__(self):
        self.seen: list[str] = []

    def parse(self, instructions):
        self.seen.extend(instructions)
        return super().parse(instructions)


def test_cached_parser_parses_each_distinct_instruction_once(tmp_path):
    counting = _CountingParser()
    cached = CachedParser(counting, InstructionCache(tmp_path / "c.sqlite"))
    first = cached.parse_detailed(["remove the cat", "Remove the cat.", "add a dog"])
    assert counting.seen == ["remove the cat", "add a dog"]
    assert [r.cached for r in first] == [False, False, False]
    second = cached.parse_detailed(["remove the cat", "add a dog", "make it snowy"])
    assert counting.seen[2:] == ["make it snowy"]
    assert [r.cached for r in second] == [True, True, False]
    assert second[0].edit == first[0].edit and second[0].method == "rules"


def _worker(path: str, worker: int, rounds: int) -> None:
    cache = InstructionCache(path)
    for index in range(rounds):
        # Overlapping keys: every worker writes the shared ones too.
        text = f"remove object {index % 25}"
        cache.put_many(
            "rules-v1", [(text, EditTuple(f"object {index % 25}", "null", "remove"), "rules", None)]
        )
        cache.put_many(
            "rules-v1",
            [
                (
                    f"add thing {worker}-{index}",
                    EditTuple("null", f"thing {worker}-{index}", "add"),
                    "rules",
                    None,
                )
            ],
        )
        assert cache.get("rules-v1", text) is not None


def test_two_processes_share_one_cache_without_corruption(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    InstructionCache(path)  # create the schema before the workers race
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(path, w, 60)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    assert [p.exitcode for p in workers] == [0, 0]
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cache = InstructionCache(path)
    assert len(cache) == 25 + 2 * 60
    assert cache.get("rules-v1", "remove object 7")[0] == EditTuple("object 7", "null", "remove")
