"""Instruction length is capped before the parser and grounding, and the cut recorded."""

from __future__ import annotations

import numpy as np

from sigma_iml.annotation.records import ItemWriter
from sigma_iml.data.pair import Pair, PairRef
from sigma_iml.instruction.branch import MAX_CONCEPT_CHARS, InstructionBranch
from sigma_iml.instruction.grounding import concept_map
from sigma_iml.instruction.parser import MAX_INSTRUCTION_CHARS, parse_instructions
from sigma_iml.methods import Prediction


class _RecordingGrounder:
    """Stands in for GroundingDINO + SAM 2: records the queries, returns ε maps."""

    def __init__(self) -> None:
        self.concepts: list[str | None] = []

    def ground(self, images, concepts, sizes):
        self.concepts.extend(concepts)
        return [concept_map(None, size, 0.1) for size in sizes]


def _pair(instruction: str) -> Pair:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    return Pair(id="long", original=image, edited=image.copy(), instruction=instruction)


def test_a_huge_instruction_reaches_parser_and_grounding_capped(tmp_path):
    # The rules take "replace X with Y": X is megabytes long without the caps.
    huge = "replace the " + "very " * 200_000 + "old cat with a dog"
    branch = InstructionBranch.from_config({"parser": "rules", "grounding": False})
    grounder = branch.grounder = _RecordingGrounder()
    (result,) = branch([_pair(huge)])
    assert len(result.parse.instruction) == MAX_INSTRUCTION_CHARS
    assert result.instruction_truncated
    assert grounder.concepts and all(
        c is None or len(c) <= MAX_CONCEPT_CHARS for c in grounder.concepts
    )
    (short,) = branch([_pair("replace the cat with a dog")])
    assert not short.instruction_truncated

    # The annotation record says so.
    writer = ItemWriter(tmp_path, "sigma")
    prediction = Prediction(
        probability=np.zeros((16, 16), dtype=np.float32), extras={"instruction_result": result}
    )
    ref = PairRef(id="long", original=None, edited=None)
    record = writer.write(ref, _pair(huge), prediction, 0, 0, {})
    assert record["instruction_truncated"] is True


def test_parse_instructions_caps_too():
    (result,) = parse_instructions(["remove the " + "x" * 10_000], "rules")
    assert len(result.instruction) == MAX_INSTRUCTION_CHARS
