"""The tuple type: strict JSON, schema checks, repair of LLM output, the match rule."""

from __future__ import annotations

import json

import pytest

from sigma_iml.instruction.edit_tuple import (
    GLOBAL_TUPLE,
    EditTuple,
    TupleFormatError,
    normalise_for_match,
    repair_tuple,
    schema_problems,
    tuples_match,
)


def test_json_round_trip_uses_the_three_keys():
    edit = EditTuple("cat", "null", "remove")
    data = json.loads(edit.to_json())
    assert data == {"original_concept": "cat", "edited_concept": "null", "action": "remove"}
    assert EditTuple.from_json(edit.to_json()) == edit
    assert edit.original == "cat" and edit.edited is None


@pytest.mark.parametrize(
    "bad",
    [
        '{"original_concept": "cat", "edited_concept": "null"}',
        '{"original_concept": "cat", "edited_concept": "null", "action": "erase"}',
        '{"original_concept": "", "edited_concept": "null", "action": "remove"}',
        '{"original_concept": null, "edited_concept": "null", "action": "remove"}',
        "[1, 2]",
        "not json",
    ],
)
def test_strict_reading_rejects_anything_off_schema(bad):
    with pytest.raises(TupleFormatError):
        EditTuple.from_json(bad)


def test_schema_problems_require_the_concepts_each_action_reads():
    assert schema_problems(EditTuple("null", "bird", "add")) == []
    assert schema_problems(EditTuple("null", "null", "add"))
    assert schema_problems(EditTuple("null", "null", "remove"))
    assert schema_problems(EditTuple("cat", "null", "replace"))
    assert schema_problems(EditTuple("sky", "null", "attribute change")) == []
    assert schema_problems(GLOBAL_TUPLE) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (  # the prompt's own key spelling
            '{"original concept":"umbrella present","edited concept":"null","action type":"remove"}',
            EditTuple("umbrella present", "null", "remove"),
        ),
        (  # markdown fence and prose around it
            'Sure! Here is the JSON:\n```json\n{"original concept": "cat", "edited concept": '
            '"dog", "action type": "Replace"}\n```\nHope this helps.',
            EditTuple("cat", "dog", "replace"),
        ),
        (  # snake-case value, None, trailing comma, single quotes
            "{'original_concept': None, 'edited_concept': 'a bird', 'action_type': 'ADD',}",
            EditTuple("null", "a bird", "add"),
        ),
        (
            '{"original": "red flowers", "edited": "white flowers", "action": "attribute_change"}',
            EditTuple("red flowers", "white flowers", "attribute change"),
        ),
        (  # the first object is unusable, the second one is the answer
            '{"note": 1} {"original concept": "null", "edited concept": "null", "action type": "global"}',
            GLOBAL_TUPLE,
        ),
        (  # braces inside strings do not confuse the extraction
            'x {"original concept": "a {weird} sign", "edited concept": "N/A", "action type": "removal"}',
            EditTuple("a {weird} sign", "null", "remove"),
        ),
    ],
)
def test_repair_recovers_the_tuple(raw, expected):
    assert repair_tuple(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "remove the cat", "{}", '{"original concept": "cat"}', '{"action type": "teleport"}'],
)
def test_repair_fails_loudly_on_garbage(raw):
    with pytest.raises(TupleFormatError):
        repair_tuple(raw)


def test_match_rule_ignores_case_articles_and_punctuation_only():
    assert normalise_for_match("The boy's T-shirt.") == "boy s t shirt"
    assert tuples_match(EditTuple("a cat", "null", "remove"), EditTuple("Cat", "null", "remove"))
    assert not tuples_match(EditTuple("cat", "null", "remove"), EditTuple("cats", "null", "remove"))
    assert not tuples_match(
        EditTuple("cat", "dog", "replace"), EditTuple("cat", "dog", "attribute change")
    )
