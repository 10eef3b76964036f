"""The instruction branch: parse → ground → fuse, for a batch of pairs.

``InstructionBranch.from_config(cfg)(pairs)`` returns, per pair, the parsed tuple, the
concept maps ``A_o`` (original concept on the original image) and ``A_e`` (edited concept
on the edited image), the intent map ``P`` and stage timings; ``result.prior(grid_hw)``
is ``P`` area-pooled to the network's token grid, its ``prior`` input.

Each stage can be switched off: ``parser="none"`` makes every tuple global (the uniform ε
prior, as for OpenSDI, which has no instructions); ``grounding=False`` makes every
concept map the ε map. Grounder calls are batched over all the pairs given: every
original-image query and every edited-image query go through the detector and the
segmenter together. Only the maps ACSF reads are grounded (:data:`GROUNDED_MAPS`): the
others are the ε map without any model call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.pair import Pair
from .cache import InstructionCache
from .config import InstructionConfig
from .edit_tuple import GLOBAL_TUPLE, EditTuple
from .fusion import fuse, pool_to_grid
from .grounding import Grounder, concept_map
from .llm import ParseResult
from .parser import MAX_INSTRUCTION_CHARS, CachedParser, build_parser

#: Characters of a concept handed to GroundingDINO. Its text encoder reads at most 256
#: tokens (``max_text_len`` of its config); a longer query only costs memory (a 1 MB
#: instruction parsed by the rules made grounding ask for 115 GB) and is cut anyway.
MAX_CONCEPT_CHARS = 256

#: Which concept maps Eq. 8 reads, per action: ``(A_o, A_e)``. ``add`` reads only the
#: edited image's map, ``remove`` only the original's, ``global`` neither (fusion.fuse).
GROUNDED_MAPS: dict[str, tuple[bool, bool]] = {
    "add": (False, True),
    "remove": (True, False),
    "replace": (True, True),
    "attribute change": (True, True),
    "global": (False, False),
}


def grounded_concepts(edit: EditTuple) -> tuple[str | None, str | None]:
    """The concepts to ground on the original and the edited image: ``(c_o, c_e)``, None
    where ACSF does not read that map (:data:`GROUNDED_MAPS`). An attribute change names
    one object that is on both images ("make the car red" parses as ``(null, "red car")``):
    its one concept is grounded on both, so ``A_o ⊙ A_e`` localises it instead of
    collapsing to ``ε·1`` (docs/design.md, step 5)."""
    c_o, c_e = edit.original, edit.edited
    if edit.action == "attribute change":
        c_o, c_e = c_o or c_e, c_e or c_o
    use_original, use_edited = GROUNDED_MAPS[edit.action]
    return (c_o if use_original else None, c_e if use_edited else None)


@dataclass
class InstructionResult:
    """The branch's output for one pair; maps are float32 ``(H, W)`` at the map size."""

    id: str
    parse: ParseResult
    original_map: np.ndarray
    edited_map: np.ndarray
    intent_map: np.ndarray
    epsilon: float
    #: The instruction was longer than :data:`MAX_INSTRUCTION_CHARS` and only its start
    #: was parsed (recorded as ``instruction_truncated`` by annotation runs).
    instruction_truncated: bool = False
    #: Seconds spent per stage for this pair (batch time divided by the batch size).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def edit(self) -> EditTuple:
        return self.parse.edit

    def prior(self, grid_hw: tuple[int, int]) -> np.ndarray:
        """``P`` area-pooled to ``grid_hw`` (e.g. ``(37, 37)``), float32 in [0, 1]."""
        return pool_to_grid(self.intent_map, grid_hw)


class InstructionBranch:
    def __init__(self, config: InstructionConfig | None = None):
        self.config = config or InstructionConfig()
        cfg = self.config
        self.parser: CachedParser | None = None
        if cfg.parser != "none":
            cache = InstructionCache(cfg.cache) if cfg.cache else None
            self.parser = CachedParser(
                build_parser(
                    cfg.parser,
                    model=cfg.parser_model,
                    device=cfg.device,
                    local_files_only=cfg.local_files_only,
                    precision=cfg.precision,
                ),
                cache,
            )
        self.grounder: Grounder | None = None
        if cfg.grounding:
            self.grounder = Grounder(
                cfg.detector,
                cfg.segmenter,
                box_threshold=cfg.box_threshold,
                text_threshold=cfg.text_threshold,
                epsilon=cfg.epsilon,
                batch_size=cfg.batch_size,
                device=cfg.device,
                local_files_only=cfg.local_files_only,
                precision=cfg.precision,
            )

    @property
    def precisions(self) -> dict[str, str]:
        """What ran, for records: ``{"parser": ..., "grounding": ...}`` with ``bf16`` or
        ``fp32`` for each model stage present (the rule parser has none)."""
        ran: dict[str, str] = {}
        if self.parser is not None and self.parser.precision is not None:
            ran["parser"] = self.parser.precision
        if self.grounder is not None:
            ran["grounding"] = self.grounder.precision
        return ran

    @classmethod
    def from_config(
        cls, cfg: InstructionConfig | Mapping[str, Any] | None = None, **overrides: Any
    ) -> InstructionBranch:
        if cfg is None:
            cfg = InstructionConfig()
        if isinstance(cfg, Mapping):
            cfg = InstructionConfig.from_dict(dict(cfg), where="instruction settings")
        if overrides:
            cfg = cfg.replace(**overrides)
        return cls(cfg)

    def _map_size(self, pair: Pair) -> tuple[int, int]:
        if self.config.map_size is not None:
            return (self.config.map_size, self.config.map_size)
        return (int(pair.edited.shape[0]), int(pair.edited.shape[1]))

    def parse(self, instructions: Sequence[str | None]) -> list[ParseResult]:
        if self.parser is None:
            return [ParseResult(text or "", GLOBAL_TUPLE, "none", "none") for text in instructions]
        return self.parser.parse_detailed(instructions)

    def __call__(self, pairs: Sequence[Pair]) -> list[InstructionResult]:
        pairs = list(pairs)
        if not pairs:
            return []
        eps = self.config.epsilon
        count = len(pairs)
        start = time.perf_counter()
        parses = self.parse([pair.instruction for pair in pairs])
        parse_seconds = (time.perf_counter() - start) / count

        sizes = [self._map_size(pair) for pair in pairs]
        start = time.perf_counter()
        if self.grounder is not None:
            # One batched grounder call: originals with c_o, edited images with c_e,
            # each only where ACSF reads that map (GROUNDED_MAPS).
            images = [p.original for p in pairs] + [p.edited for p in pairs]
            grounded = [grounded_concepts(r.edit) for r in parses]
            concepts = [c_o for c_o, _ in grounded] + [c_e for _, c_e in grounded]
            # Concepts are capped before they reach the detector (docs/reliability.md).
            concepts = [None if c is None else c[:MAX_CONCEPT_CHARS] for c in concepts]
            maps = self.grounder.ground(images, concepts, sizes + sizes)
            original_maps, edited_maps = maps[:count], maps[count:]
        else:
            original_maps = [concept_map(None, s, eps) for s in sizes]
            edited_maps = [concept_map(None, s, eps) for s in sizes]
        ground_seconds = (time.perf_counter() - start) / count

        results = []
        for pair, parsed, a_o, a_e in zip(pairs, parses, original_maps, edited_maps):
            start = time.perf_counter()
            intent = fuse(parsed.edit.action, a_o, a_e, eps)
            results.append(
                InstructionResult(
                    id=pair.id,
                    parse=parsed,
                    original_map=a_o,
                    edited_map=a_e,
                    intent_map=intent,
                    epsilon=eps,
                    instruction_truncated=len(pair.instruction or "") > MAX_INSTRUCTION_CHARS,
                    timings={
                        "parse": parse_seconds,
                        "ground": ground_seconds,
                        "fuse": time.perf_counter() - start,
                    },
                )
            )
        return results
