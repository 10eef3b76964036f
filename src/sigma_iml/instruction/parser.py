"""``parse_instructions(texts, parser=...)``: the one entry point to the parsers.

``parser="rules"`` uses :mod:`~sigma_iml.instruction.rules`; ``"llm"`` the LLM parser
(:mod:`~sigma_iml.instruction.llm`, falling back to the rules per instruction);
``"auto"`` the LLM when a model is configured (``model=...``) or the default model is
already in the local Hugging Face cache, else the rules, so an offline machine without
weights never waits on the hub. With ``cache=PATH`` answers are read from and written to
a persistent :class:`~sigma_iml.instruction.cache.InstructionCache`.

Every parser sees at most :data:`MAX_INSTRUCTION_CHARS` characters of an instruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .cache import InstructionCache, normalise_instruction
from .edit_tuple import GLOBAL_TUPLE, EditTuple
from .llm import DEFAULT_LLM, LLMParser, ParseResult
from .rules import RuleParser

#: Characters of an instruction that reach a parser (and, through its tuple, grounding).
#: An editing instruction is a sentence or two (MagicBrush's and the paper's are far
#: shorter); 2,000 characters is about 500 tokens, well inside the LLM's prompt. Without
#: a cap a 1 MB instruction held the LLM parser for over 400 s. The pair's record says
#: when its instruction was cut (``instruction_truncated``).
MAX_INSTRUCTION_CHARS = 2_000


def cap_instruction(text: str | None) -> str | None:
    """The first :data:`MAX_INSTRUCTION_CHARS` characters of ``text``."""
    return text if text is None else text[:MAX_INSTRUCTION_CHARS]


PARSER_KINDS: tuple[str, ...] = ("auto", "llm", "rules")


def default_llm_available() -> bool:
    """Whether :data:`DEFAULT_LLM` is in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False
    found = try_to_load_from_cache(DEFAULT_LLM, "config.json")
    return isinstance(found, str)


def build_parser(
    parser: str = "auto",
    *,
    model: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 8,
    local_files_only: bool = False,
    precision: str = "auto",
) -> RuleParser | LLMParser:
    """The parser object for ``parser`` (see the module docstring)."""
    if parser not in PARSER_KINDS:
        raise ConfigError(f"unknown parser {parser!r}; choose one of {', '.join(PARSER_KINDS)}")
    if parser == "rules":
        return RuleParser()
    if parser == "auto" and model is None and not default_llm_available():
        return RuleParser()
    return LLMParser(
        str(model) if model is not None else DEFAULT_LLM,
        device=device,
        batch_size=batch_size,
        local_files_only=local_files_only,
        precision=precision,
    )


class CachedParser:
    """A parser behind an :class:`InstructionCache`: each distinct normalised instruction
    is parsed once, across calls and processes."""

    def __init__(self, parser: RuleParser | LLMParser, cache: InstructionCache | None = None):
        self.parser = parser
        self.cache = cache

    @property
    def name(self) -> str:
        return self.parser.name

    @property
    def precision(self) -> str | None:
        """``bf16`` / ``fp32`` for the LLM parser; None for the rules (no tensors)."""
        return getattr(self.parser, "precision", None)

    def parse_detailed(self, instructions: Sequence[str | None]) -> list[ParseResult]:
        texts = [cap_instruction(text) for text in instructions]
        results: list[ParseResult | None] = [None] * len(texts)
        for index, text in enumerate(texts):
            if text is None or not text.strip():  # OpenSDI has no instructions: the ε map
                results[index] = ParseResult(text or "", GLOBAL_TUPLE, self.name, "none")
        wanted = [i for i, r in enumerate(results) if r is None]
        hits = self.cache.get_many(self.name, [texts[i] for i in wanted]) if self.cache else {}
        todo: dict[str, list[int]] = {}
        for index in wanted:
            key = normalise_instruction(texts[index])
            if key in hits:
                edit, method, fallback = hits[key]
                results[index] = ParseResult(
                    texts[index], edit, self.name, method, fallback=fallback, cached=True
                )
            else:
                todo.setdefault(key, []).append(index)
        if todo:
            firsts = [indices[0] for indices in todo.values()]
            parsed = self._parse_uncached([texts[i] for i in firsts])
            for indices, result in zip(todo.values(), parsed):
                for index in indices:
                    results[index] = ParseResult(
                        texts[index],
                        result.edit,
                        result.parser,
                        result.method,
                        result.fallback,
                        result.attempts,
                        result.raw_output,
                    )
            if self.cache is not None:
                self.cache.put_many(
                    self.name, [(r.instruction, r.edit, r.method, r.fallback) for r in parsed]
                )
        return [r for r in results if r is not None]

    def _parse_uncached(self, texts: list[str]) -> list[ParseResult]:
        if isinstance(self.parser, LLMParser):
            return self.parser.parse_detailed(texts)
        return [
            ParseResult(text, edit, self.name, "rules")
            for text, edit in zip(texts, self.parser.parse(texts))
        ]

    def parse(self, instructions: Sequence[str | None]) -> list[EditTuple]:
        return [result.edit for result in self.parse_detailed(instructions)]


def parse_instructions(
    texts: Sequence[str | None],
    parser: str = "auto",
    *,
    model: str | Path | None = None,
    cache: str | Path | InstructionCache | None = None,
    device: str = "auto",
    batch_size: int = 8,
    local_files_only: bool = False,
    precision: str = "auto",
) -> list[ParseResult]:
    """Parse ``texts`` (None or empty → the global tuple, method ``"none"``)."""
    if isinstance(cache, (str, Path)):
        cache = InstructionCache(cache)
    built = build_parser(
        parser,
        model=model,
        device=device,
        batch_size=batch_size,
        local_files_only=local_files_only,
        precision=precision,
    )
    return CachedParser(built, cache).parse_detailed(texts)
