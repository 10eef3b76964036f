"""The rule parser: the paper's Table 4, common corpus phrasings, and its accuracy on the
labelled set.

Tuple match (what "whole tuple" accuracy counts): the actions are equal and both concepts
are equal after lower-casing, turning punctuation into spaces and dropping the articles
a/an/the (``sigma_iml.instruction.edit_tuple.tuples_match``). The labelling convention is
documented in ``sigma_iml.instruction.rules``.

``instructions_labelled.jsonl`` (169 instructions) was written before the parser and
labelled independently of it; ``instructions_heldout.jsonl`` (45) was written after the
parser's first version and not used to tune it until its first score was recorded
(91.1 % action, 88.9 % tuple).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sigma_iml.instruction.edit_tuple import ACTIONS, EditTuple, tuples_match
from sigma_iml.instruction.rules import RuleParser, parse_rules

DATA = Path(__file__).resolve().parents[1] / "data"


def _load(name: str) -> list[tuple[str, EditTuple]]:
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    return [
        (r["instruction"], EditTuple(r["original_concept"], r["edited_concept"], r["action"]))
        for r in rows
    ]


def _accuracy(name: str) -> tuple[float, float, int]:
    rows = _load(name)
    action = sum(parse_rules(text).action == expected.action for text, expected in rows)
    whole = sum(tuples_match(parse_rules(text), expected) for text, expected in rows)
    return action / len(rows), whole / len(rows), len(rows)


@pytest.mark.parametrize(
    ("instruction", "expected"),
    [  # Table 4 of the paper (concepts in our convention: no articles, no "texture")
        ("remove the cat", EditTuple("cat", "null", "remove")),
        ("add a hat on the person", EditTuple("null", "hat", "add")),
        ("turn the wood into marble", EditTuple("wood", "marble", "replace")),
        (
            "Change the boy's grey striped t-shirt to a bright blue t-shirt",
            EditTuple("grey striped t-shirt", "bright blue t-shirt", "attribute change"),
        ),
        ("make it more dramatic", EditTuple("null", "null", "global")),
    ],
)
def test_table4_examples(instruction, expected):
    assert tuples_match(parse_rules(instruction), expected)


@pytest.mark.parametrize(
    ("instruction", "action", "original", "edited"),
    [
        ("Please get rid of the trash can.", "remove", "trash can", "null"),
        ("TAKE OUT THE LAMP", "remove", "lamp", "null"),
        ("what if the cat was a dog?", "replace", "cat", "dog"),
        ("swap the bicycle for a motorcycle", "replace", "bicycle", "motorcycle"),
        ("Replace the apple with an orange", "replace", "apple", "orange"),  # fruit, not colour
        ("let the sky be cloudy", "attribute change", "sky", "cloudy sky"),
        ("make the woman smile", "attribute change", "woman", "smiling woman"),
        ("paint the walls light blue", "attribute change", "walls", "light blue walls"),
        ("insert a sailboat on the lake", "add", "null", "sailboat"),
        ("have the dog wear a bow tie", "add", "null", "bow tie"),
        ("turn the photo into a watercolor painting", "global", "null", "null"),
        ("change the season to autumn", "global", "null", "null"),
        ("add a vintage filter", "global", "null", "null"),
        ("", "global", "null", "null"),
        ("zxqv blorp", "global", "null", "null"),
    ],
)
def test_common_phrasings(instruction, action, original, edited):
    assert tuples_match(parse_rules(instruction), EditTuple(original, edited, action))


def test_labelled_set_is_large_varied_and_well_formed():
    rows = _load("instructions_labelled.jsonl")
    assert len(rows) >= 150
    assert len({text.lower() for text, _ in rows}) == len(rows)
    for action in ACTIONS:
        assert sum(expected.action == action for _, expected in rows) >= 25
    assert any(text.endswith("?") for text, _ in rows)
    assert any(text.isupper() for text, _ in rows)


@pytest.mark.parametrize("name", ["instructions_labelled.jsonl", "instructions_heldout.jsonl"])
def test_rule_parser_meets_the_accuracy_targets(name):
    action, whole, count = _accuracy(name)
    print(f"{name}: n={count} action {action:.1%} tuple {whole:.1%}")
    assert action >= 0.90
    assert whole >= 0.80


def test_rule_parser_object_parses_batches():
    assert RuleParser().parse(["remove the cat", "make it snowy"]) == [
        EditTuple("cat", "null", "remove"),
        EditTuple("null", "null", "global"),
    ]
