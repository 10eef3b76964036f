"""The registered method ``sigma`` (``sigma:checkpoint=PATH``) for ``evaluate`` and
``annotate``: instruction branch (parse → ground → fuse) then the network.

Instruction settings come, in increasing priority, from the defaults of
:class:`~sigma_iml.instruction.branch.InstructionConfig` (the paper's models from the
Hugging Face hub), an ``instruction.json`` next to the checkpoint (paths in it relative
to the checkpoint folder, as ``sigma-iml dev tiny-weights`` writes), and the method's
own parameters (``sigma:checkpoint=P,parser=rules,grounding=false``).

This module imports torch and transformers only when a method is built, so listing the
registered methods stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ..data.pair import Pair
from ..errors import ConfigError
from ..methods import METHODS, MaskMethod, Prediction

#: Keys of ``Prediction.extras["timings"]`` naming which parser produced a pair's tuple;
#: each holds the same seconds as ``parse``, so timings can be grouped by parser kind.
PARSER_STAGES = ("parser_llm", "parser_rules", "parser_cache_hit")

#: The file beside a checkpoint naming the instruction models it runs with.
INSTRUCTION_SETTINGS = "instruction.json"
_PATH_SETTINGS = ("parser_model", "detector", "segmenter", "cache")


def instruction_settings(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's ``instruction.json`` with relative paths made absolute (a value
    starting with ``.`` is a path relative to the checkpoint folder); {} when absent."""
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    path = folder / INSTRUCTION_SETTINGS
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: invalid JSON ({err.msg})") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: expected a JSON object of instruction settings")
    for key in _PATH_SETTINGS:
        value = settings.get(key)
        if isinstance(value, str) and value.startswith("."):
            settings[key] = str((folder / value).resolve())
    return settings


def parser_stage(parse: Any) -> str | None:
    """The :data:`PARSER_STAGES` key for a :class:`~sigma_iml.instruction.llm.ParseResult`:
    a cache hit, the rule parser, or the LLM (which also covers ``llm-repaired`` and
    ``rules-fallback``: the LLM ran before the rules were asked); None when no parser ran
    (no instruction, or ``parser=none``)."""
    if parse.cached:
        return "parser_cache_hit"
    if parse.method == "none":
        return None
    if parse.method == "rules":
        return "parser_rules"
    return "parser_llm"


@METHODS.register("sigma")
class SigmaMethod(MaskMethod):
    """SIGMA: DINOv2 semantic differencing guided by the grounded instruction (checkpoint=PATH)."""

    name = "sigma"

    def __init__(
        self,
        checkpoint: Path,
        batch_size: int = 4,
        device: str = "auto",
        local_files_only: bool = False,
        intermediates: bool = False,
        instruction: bool = True,
        parser: Literal["auto", "llm", "rules", "none"] | None = None,
        parser_model: str | None = None,
        grounding: bool | None = None,
        detector: str | None = None,
        segmenter: str | None = None,
        parse_cache: str | None = None,
    ):
        from .annotator import Annotator

        self.checkpoint = Path(checkpoint)
        self.batch_size = batch_size
        self.device = device
        self.local_files_only = local_files_only
        self.intermediates = intermediates
        self.annotator = Annotator.from_checkpoint(
            self.checkpoint, device=device, batch_size=batch_size, local_files_only=local_files_only
        )
        head = self.annotator.config.head
        self.branch = None
        self.instruction_config: dict[str, Any] | None = None
        # A checkpoint trained without the instruction branch (ablation row) takes no prior.
        if instruction and head.use_instruction:
            from ..instruction.branch import InstructionBranch

            settings: dict[str, Any] = {
                "device": device,
                "batch_size": batch_size,
                "local_files_only": local_files_only,
                **instruction_settings(self.checkpoint),
            }
            overrides = {
                "parser": parser,
                "parser_model": parser_model,
                "grounding": grounding,
                "detector": detector,
                "segmenter": segmenter,
                "cache": parse_cache,
            }
            settings.update({k: v for k, v in overrides.items() if v is not None})
            # The concept maps' floor must be the ε the network was built with.
            settings["epsilon"] = head.prior_epsilon
            self.branch = InstructionBranch.from_config(settings)
            self.instruction_config = settings

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "checkpoint": str(self.checkpoint),
            "batch_size": self.batch_size,
            "device": self.device,
            "instruction": self.branch is not None,
        }
        if self.instruction_config is not None:
            params["parser"] = self.instruction_config.get("parser", "auto")
            params["grounding"] = self.instruction_config.get("grounding", True)
        return params

    def predict_batch(self, pairs: Sequence[Pair]) -> list[Prediction]:
        """Predictions whose ``extras["timings"]`` hold this pair's seconds per stage
        (its share of the batch): ``parse``, ``ground``, ``fuse`` (instruction branch),
        one of :data:`PARSER_STAGES` (which parser ``parse`` was), ``backbone`` and
        ``head`` (the network's two parts), and ``network`` (backbone, head, and the
        resizing of images in and maps out). A batch mixing cache hits and LLM parses
        reports the batch's mean parse time for each of its pairs."""
        # Without the branch the network gets its uniform ε prior, as for instruction-free
        # data (OpenSDI).
        import time

        results = self.branch(pairs) if self.branch is not None else [None] * len(pairs)
        priors = [None if r is None else r.intent_map for r in results]
        network_start = time.perf_counter()
        annotations = self.annotator.annotate(
            pairs, priors=priors, intermediates=self.intermediates
        )
        network_seconds = (time.perf_counter() - network_start) / max(len(pairs), 1)
        predictions = []
        for annotation, result in zip(annotations, results):
            extras: dict[str, Any] = {
                "input_size": list(self.annotator.config.backbone.image_size),
                "timings": {"network": network_seconds, **annotation.timings},
            }
            if result is not None:
                # The parsed tuple and how it was obtained (annotation records keep it).
                extras["parsed_instruction"] = {
                    **result.edit.to_dict(),
                    "parser": result.parse.parser,
                    "method": result.parse.method,
                    "fallback": result.parse.fallback,
                    "cached": result.parse.cached,
                }
                extras["timings"].update(result.timings)
                stage = parser_stage(result.parse)
                if stage is not None:
                    extras["timings"][stage] = result.timings["parse"]
                # Kept for panels (``annotate --save-intermediates``); not written to records.
                extras["instruction_result"] = result
            if self.intermediates:
                maps = dict(annotation.intermediates)
                if result is not None:
                    maps["concept_original"] = result.original_map
                    maps["concept_edited"] = result.edited_map
                    maps["intent"] = result.intent_map
                extras["intermediates"] = maps
            predictions.append(Prediction(probability=annotation.probability, extras=extras))
        return predictions
