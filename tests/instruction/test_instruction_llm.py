"""The LLM parser through a tiny random Qwen2: batching, validation, repair, retry and
the recorded rule fallback."""

from __future__ import annotations

import pytest

from sigma_iml.instruction.edit_tuple import EditTuple
from sigma_iml.instruction.llm import RETRY_PROMPT, SYSTEM_PROMPT, LLMParser
from sigma_iml.instruction.parser import build_parser, parse_instructions
from sigma_iml.instruction.rules import RuleParser


@pytest.fixture(scope="module")
def tiny_llm(tiny_instruction_models):
    return LLMParser(
        str(tiny_instruction_models["qwen2"]),
        device="cpu",
        batch_size=2,
        max_new_tokens=12,
        local_files_only=True,
    )


def test_system_prompt_is_the_papers_appendix_c():
    assert SYSTEM_PROMPT.startswith(
        "You are an expert at understanding image editing instructions."
    )
    assert (
        '{"original concept":"cat","edited concept":"dog","action type":"replace"}' in SYSTEM_PROMPT
    )
    assert "- Return strict JSON only, no markdown, no extra text." in SYSTEM_PROMPT
    for action in ("add", "remove", "attribute change", "replace", "global"):
        assert f'"{action}"' in SYSTEM_PROMPT


def test_garbage_from_a_random_model_falls_back_to_rules_and_says_so(tiny_llm):
    texts = ["remove the cat", "make it snowy", "replace the cat with a dog"]
    results = tiny_llm.parse_detailed(texts)
    assert [r.instruction for r in results] == texts
    for result, text in zip(results, texts):
        assert result.method == "rules-fallback"
        assert result.fallback and "invalid after 2 attempt" in result.fallback
        assert result.attempts == 2 and result.raw_output is not None
        assert result.edit == RuleParser().parse([text])[0]
        assert result.parser == f"llm:{tiny_llm.model_name}"


def test_batched_left_padded_generation_equals_one_at_a_time(tiny_llm):
    conversations = [
        [{"role": "system", "content": "s"}, {"role": "user", "content": text}]
        for text in ("add a bird", "remove the umbrella on the left of the table please", "x")
    ]
    batched = tiny_llm.generate(conversations)  # batch_size 2: one padded pair, one single
    single = [tiny_llm.generate([c])[0] for c in conversations]
    assert batched == single


def test_valid_repaired_and_retried_answers(tiny_llm, monkeypatch):
    calls = []
    scripted = {
        "add a bird": ['{"original concept":"null","edited concept":"a bird","action type":"add"}'],
        "remove the cat": [
            '```json\n{"original_concept": "cat", "edited_concept": null, "action": "Remove"}\n```'
        ],
        "make the car red": [
            "I think it is an attribute change.",
            '{"original concept":"car","edited concept":"red car","action type":"attribute change"}',
        ],
        "remove the dog": [
            '{"original concept":"null","edited concept":"null","action type":"remove"}'
        ]
        * 2,
    }

    def fake_generate(conversations):
        calls.append(conversations)
        answers = []
        for messages in conversations:
            text = messages[1]["content"].removeprefix('Instruction: "').removesuffix('"')
            turn = sum(m["role"] == "assistant" for m in messages)
            answers.append(scripted[text][turn])
        return answers

    monkeypatch.setattr(tiny_llm, "generate", fake_generate)
    results = tiny_llm.parse_detailed(list(scripted))
    by_text = {r.instruction: r for r in results}
    assert by_text["add a bird"].method == "llm"
    assert by_text["add a bird"].edit == EditTuple("null", "a bird", "add")
    assert by_text["remove the cat"].method == "llm-repaired"
    assert by_text["remove the cat"].edit == EditTuple("cat", "null", "remove")
    retried = by_text["make the car red"]
    assert retried.method == "llm" and retried.attempts == 2
    assert retried.edit == EditTuple("car", "red car", "attribute change")
    # Schema-valid JSON that breaks the action's rule is invalid: retried, then rules.
    assert by_text["remove the dog"].method == "rules-fallback"
    assert "without an original concept" in by_text["remove the dog"].fallback
    assert by_text["remove the dog"].edit == EditTuple("dog", "null", "remove")
    # The retry turn names the problem; only the invalid ones are asked again.
    assert len(calls) == 2 and len(calls[1]) == 2
    assert calls[1][0][-1]["content"].startswith(RETRY_PROMPT.split("(")[0])


def test_auto_uses_rules_without_a_configured_or_cached_model(tiny_instruction_models):
    assert isinstance(build_parser("auto"), RuleParser)
    assert isinstance(
        build_parser("auto", model=tiny_instruction_models["qwen2"], local_files_only=True),
        LLMParser,
    )
    results = parse_instructions(["remove the cat", None, "  "], "rules")
    assert results[0].method == "rules" and results[0].edit.action == "remove"
    assert results[1].method == results[2].method == "none"
    assert results[1].edit.action == "global"
