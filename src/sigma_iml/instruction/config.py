"""The instruction branch's settings, a typed :class:`~sigma_iml.config.ConfigModel`.

The same model validates a training config's ``instruction:`` section, the
``instruction.json`` a checkpoint carries (:func:`sigma_iml.models.checkpoint.instruction_settings`)
and the ``sigma`` method's instruction parameters. A checkpoint stores only the settings
it was given (:meth:`InstructionConfig.given`), so a default that changes later, or a
device chosen at run time, is not frozen into it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..config import ConfigModel
from ..device import Precision
from ..errors import ConfigError
from .grounding import (
    BOX_THRESHOLD,
    DEFAULT_DETECTOR,
    DEFAULT_EPSILON,
    DEFAULT_SEGMENTER,
    TEXT_THRESHOLD,
)

#: Which parser turns an instruction into its edit tuple (``none``: every tuple is global).
ParserChoice = Literal["auto", "llm", "rules", "none"]

#: Settings naming a model folder or file: in a checkpoint's ``instruction.json`` a value
#: starting with ``.`` is relative to the checkpoint folder.
PATH_SETTINGS = ("parser_model", "detector", "segmenter", "cache")


class InstructionConfig(ConfigModel):
    """Settings of the instruction branch; every default is the paper's or says why not."""

    #: ``auto`` (the LLM when it is configured or cached locally, else the rules),
    #: ``llm``, ``rules`` or ``none`` (no parser: every tuple is global).
    parser: ParserChoice = "auto"
    #: LLM name or folder; None: the paper's Qwen2.5-0.5B-Instruct (``auto`` uses it only
    #: when it is in the local Hugging Face cache).
    parser_model: str | None = None
    #: sqlite file of the persistent parse cache; None: no cache.
    cache: str | None = None
    #: Ground concepts with GroundingDINO + SAM 2 (off: every concept map is ε).
    grounding: bool = True
    detector: str = DEFAULT_DETECTOR
    segmenter: str = DEFAULT_SEGMENTER
    box_threshold: float = BOX_THRESHOLD
    text_threshold: float = TEXT_THRESHOLD
    epsilon: float = Field(default=DEFAULT_EPSILON, ge=0.0, le=1.0)
    #: Side of the square concept and intent maps; None: the edited image's size.
    map_size: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=4, ge=1)
    device: str = "auto"
    #: ``auto`` | ``bf16`` | ``fp32`` for the parser LLM and the grounding models
    #: (sigma_iml.device: ``auto`` is bf16 on CUDA and AMX CPUs, else float32).
    precision: Precision = "auto"
    local_files_only: bool = False

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> InstructionConfig:
        """Validate ``data``; unknown keys are named with the list of known ones (a
        typo in a training config or ``instruction.json`` is fixed from the message)."""
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                prefix = f"{where}: " if where else ""
                raise ConfigError(
                    f"{prefix}unknown instruction settings {', '.join(unknown)}; known: "
                    f"{', '.join(sorted(cls.model_fields))}"
                )
        return super().from_dict(data, where)

    def given(self) -> dict[str, Any]:
        """The settings set explicitly (not left at their defaults), as JSON values."""
        return self.model_dump(mode="json", exclude_unset=True)
