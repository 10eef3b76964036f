"""The instruction-grounding branch (the paper's §3.2.2): parse the editing instruction
into ``(original concept, edited concept, action)``, ground each concept in its image
(GroundingDINO + SAM 2), and fuse the two concept maps by the action into the intent map
``P`` that the network takes as its instruction prior.

Torch and transformers are imported only when a model is used: the rule parser, the
tuple type and the cache load in milliseconds.
"""

from .branch import InstructionBranch, InstructionResult
from .cache import InstructionCache, normalise_instruction
from .config import InstructionConfig
from .edit_tuple import ACTIONS, GLOBAL_TUPLE, NULL, EditTuple, TupleFormatError, repair_tuple
from .fusion import fuse, pool_to_grid
from .grounding import Grounder, concept_map
from .llm import DEFAULT_LLM, SYSTEM_PROMPT, LLMParser, ParseResult
from .parser import build_parser, parse_instructions
from .rules import RuleParser, parse_rules

__all__ = [
    "ACTIONS",
    "DEFAULT_LLM",
    "GLOBAL_TUPLE",
    "NULL",
    "SYSTEM_PROMPT",
    "EditTuple",
    "Grounder",
    "InstructionBranch",
    "InstructionCache",
    "InstructionConfig",
    "InstructionResult",
    "LLMParser",
    "ParseResult",
    "RuleParser",
    "TupleFormatError",
    "build_parser",
    "concept_map",
    "fuse",
    "normalise_instruction",
    "parse_instructions",
    "parse_rules",
    "pool_to_grid",
    "repair_tuple",
]
