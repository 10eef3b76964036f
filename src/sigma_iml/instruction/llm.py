"""The LLM instruction parser: a transformers causal LM with the paper's prompt.

The paper's Semantic Transformation Parser is Qwen2.5-0.5B-Instruct prompted with the
system prompt of its Appendix C (reproduced verbatim in :data:`SYSTEM_PROMPT`). Here:
chat template, greedy decoding, batches left-padded. Each answer is validated
(:func:`~sigma_iml.instruction.edit_tuple.schema_problems`); invalid output is repaired
(:func:`~sigma_iml.instruction.edit_tuple.repair_tuple`: the JSON object is extracted
and keys and values normalised), else retried with the problem named in a follow-up
turn, else handed to the rule parser. Every result says which of these happened.

Device and precision are chosen when the parser is built, by :mod:`sigma_iml.device`:
``precision="auto"`` is bfloat16 on CUDA and on CPUs with bf16 matrix units (AMX), float32
elsewhere (a CPU without them emulates bf16, slower than float32); ``parser.precision``
says which ran (docs/design.md, "Device and precision"). Nothing changes global torch
state; the model is loaded once per process and configuration.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .edit_tuple import EditTuple, TupleFormatError, repair_tuple, schema_problems
from .rules import RuleParser

#: The paper's default parser model (§3.2.2: "Qwen2.5-0.5B ... in-context prompting").
DEFAULT_LLM = "Qwen/Qwen2.5-0.5B-Instruct"

#: The system prompt of the paper's Appendix C (Fig. 6), verbatim, line breaks included.
SYSTEM_PROMPT = """You are an expert at understanding image editing instructions.
Convert each instruction into EXACTLY one JSON object with these keys:
- "original concept"
- "edited concept"
- "action type"
Allowed values for "action type" are only:
1) "add"
2) "remove"
3) "attribute change"
4) "replace"
5) "global"
Definitions:
- add: a new object/concept is introduced.
- remove: an existing object/concept is deleted.
- attribute change: same object identity, only attribute/state/color/pose/
expression/action/style detail changes.
- replace: one object/concept is swapped with another object/concept.
- global: whole-image change (e.g., weather, season, style, lighting,
time of day).
Rules:
- Return strict JSON only, no markdown, no extra text.
- If information is implicit, infer concise concepts.
- Keep concepts short noun phrases.
Examples:
Instruction: "add a bird"
{"original concept":"null","edited concept":"a bird","action type":"add"}
Instruction: "remove the umbrella"
{"original concept":"umbrella present","edited concept":"null",
"action type":"remove"}
Instruction: "change the red flowers to white flowers"
{"original concept":"red flowers","edited concept":"white flowers",
"action type":"attribute change"}
Instruction: "replace the cat with a dog"
{"original concept":"cat","edited concept":"dog","action type":"replace"}
Instruction: "make it snowy"
{"original concept":"null","edited concept":"null","action type":"global"}
"""

#: The follow-up turn of a retry; ``{problem}`` says what was wrong.
RETRY_PROMPT = (
    "That answer was not usable ({problem}). Reply with exactly one JSON object with the "
    'keys "original concept", "edited concept" and "action type", and nothing else.'
)


def user_message(instruction: str) -> str:
    """The user turn, in the form of the prompt's own examples."""
    return f'Instruction: "{instruction.strip()}"'


@dataclass(frozen=True)
class ParseResult:
    """One instruction's tuple and how it was obtained.

    ``method``: ``"llm"`` (valid JSON as generated), ``"llm-repaired"`` (valid after
    :func:`repair_tuple`), ``"rules"`` (the rule parser was asked), ``"rules-fallback"``
    (the LLM's answers stayed invalid; ``fallback`` says why), ``"none"`` (no parser: the
    global tuple). ``cached``: read from the persistent cache.
    """

    instruction: str
    edit: EditTuple
    parser: str
    method: str
    fallback: str | None = None
    attempts: int = 0
    raw_output: str | None = None
    cached: bool = False

    def to_dict(self) -> dict:
        return {
            "instruction": self.instruction,
            **self.edit.to_dict(),
            "parser": self.parser,
            "method": self.method,
            "fallback": self.fallback,
            "attempts": self.attempts,
            "cached": self.cached,
        }


def choose_device_dtype(device: str = "auto", precision: str = "auto"):
    """``(device, compute dtype)``: the resolved device and the dtype ``precision`` runs
    in there (:func:`sigma_iml.device.autocast_dtype`; float32 when it says None)."""
    import torch

    from ..device import autocast_dtype, resolve_device

    resolved = resolve_device(device)
    return resolved, autocast_dtype(resolved, precision) or torch.float32


@functools.lru_cache(maxsize=4)
def load_causal_lm(name_or_path: str, device: str, dtype_name: str, local_files_only: bool):
    """``(model, tokenizer)``, loaded once per process and configuration."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..hub import resolve_pretrained

    source, local_files_only = resolve_pretrained(name_or_path, local_files_only)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        # safetensors only: a pickled pytorch_model.bin could run code when loaded.
        model = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=getattr(torch, dtype_name),
            local_files_only=local_files_only,
            use_safetensors=True,
        )
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load the parser model {name_or_path!r}: {err}") from err
    model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


class LLMParser:
    """Instructions → tuples with a chat LLM; see the module docstring.

    ``retries``: extra generations with a corrective turn after an invalid answer (the
    decoding is greedy, so repeating the same prompt would repeat the same answer).
    """

    def __init__(
        self,
        model: str = DEFAULT_LLM,
        *,
        device: str = "auto",
        batch_size: int = 8,
        max_new_tokens: int = 64,
        retries: int = 1,
        local_files_only: bool = False,
        precision: str = "auto",
    ):
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if retries < 0:
            raise ConfigError("retries must be non-negative")
        self.model_name = str(model)
        import torch

        from ..device import weights_dtype

        self.device, self.dtype = choose_device_dtype(device, precision)
        # Weights in bf16 wherever bf16 runs (CUDA, AMX CPUs), else float32
        # (sigma_iml.device.weights_dtype).
        self.weights_dtype = weights_dtype(self.device, precision)
        self.autocast_dtype = None if self.dtype == torch.float32 else self.dtype
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.retries = retries
        self.local_files_only = local_files_only
        self.fallback_parser = RuleParser()
        self._model = self._tokenizer = None

    @property
    def precision(self) -> str:
        """``bf16`` or ``fp32``: the precision the parser runs in, for records."""
        from ..device import precision_name

        return precision_name(self.autocast_dtype)

    @property
    def name(self) -> str:
        """Parser identity, part of the cache key."""
        return f"llm:{self.model_name}"

    def _load(self):
        if self._model is None:
            self._model, self._tokenizer = load_causal_lm(
                self.model_name,
                str(self.device),
                str(self.weights_dtype).removeprefix("torch."),
                self.local_files_only,
            )
        return self._model, self._tokenizer

    def generate(self, conversations: Sequence[list[dict[str, str]]]) -> list[str]:
        """Greedy answers to chat ``conversations``, batched with left padding."""
        import torch

        from ..device import autocast

        model, tokenizer = self._load()
        answers: list[str] = []
        for start in range(0, len(conversations), self.batch_size):
            chunk = conversations[start : start + self.batch_size]
            prompts = [
                tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                for messages in chunk
            ]
            # Left padding: generation continues from the last position of every row.
            # Passed per call, so the shared tokenizer object keeps its own setting.
            batch = tokenizer(
                prompts,
                return_tensors="pt",
                padding=True,
                padding_side="left",
                add_special_tokens=False,
            )
            batch = {key: value.to(self.device) for key, value in batch.items()}
            with torch.inference_mode(), autocast(self.device, self.autocast_dtype):
                output = model.generate(
                    **batch,
                    do_sample=False,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    # Greedy: unset the sampling knobs a generation_config may carry.
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            answers.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        return answers

    @staticmethod
    def _read(answer: str) -> tuple[EditTuple | None, str, str | None]:
        """``(tuple or None, method, problem)`` for one raw answer."""
        try:
            strict = EditTuple.from_json(answer.strip())  # our own keys, exactly
            problems = schema_problems(strict)
            if not problems:
                return strict, "llm", None
        except TupleFormatError:
            pass
        try:
            repaired = repair_tuple(answer)
        except TupleFormatError as err:
            return None, "", str(err)
        problems = schema_problems(repaired)
        if problems:
            return None, "", "; ".join(problems)
        # Output in the prompt's own key spelling is as intended, not a repair.
        try:
            data = json.loads(answer.strip())
            exact = set(data) == {"original concept", "edited concept", "action type"}
        except (json.JSONDecodeError, TypeError, AttributeError):
            exact = False
        return repaired, "llm" if exact else "llm-repaired", None

    def parse_detailed(self, instructions: Sequence[str]) -> list[ParseResult]:
        texts = list(instructions)
        conversations = [
            [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_message(text)},
            ]
            for text in texts
        ]
        results: list[ParseResult | None] = [None] * len(texts)
        problems: dict[int, str] = {}
        raw: dict[int, str] = {}
        pending = list(range(len(texts)))
        for attempt in range(1, self.retries + 2):
            if not pending:
                break
            answers = self.generate([conversations[i] for i in pending])
            still = []
            for index, answer in zip(pending, answers):
                raw[index] = answer
                edit, method, problem = self._read(answer)
                if edit is not None:
                    results[index] = ParseResult(
                        texts[index], edit, self.name, method, attempts=attempt, raw_output=answer
                    )
                    continue
                problems[index] = problem or "invalid output"
                conversations[index] = [
                    *conversations[index],
                    {"role": "assistant", "content": answer},
                    {"role": "user", "content": RETRY_PROMPT.format(problem=problems[index])},
                ]
                still.append(index)
            pending = still
        if pending:
            fallback = self.fallback_parser.parse([texts[i] for i in pending])
            for index, edit in zip(pending, fallback):
                results[index] = ParseResult(
                    texts[index],
                    edit,
                    self.name,
                    "rules-fallback",
                    fallback=f"LLM output invalid after {self.retries + 1} attempt(s): "
                    f"{problems[index]}",
                    attempts=self.retries + 1,
                    raw_output=raw[index],
                )
        return [result for result in results if result is not None]

    def parse(self, instructions: Sequence[str]) -> list[EditTuple]:
        return [result.edit for result in self.parse_detailed(instructions)]
