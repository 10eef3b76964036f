"""The registered method ``sigma`` (``sigma:checkpoint=PATH``) for ``evaluate`` and
``annotate``: instruction branch (parse → ground → fuse) then the network.

Instruction settings come, in increasing priority, from the defaults of
:class:`~sigma_iml.instruction.config.InstructionConfig` (the paper's models from the
Hugging Face hub), the checkpoint's ``instruction.json``
(:func:`~sigma_iml.models.checkpoint.instruction_settings`; paths in it relative to the
checkpoint folder, as ``sigma-iml dev tiny-weights`` writes), and the method's own
parameters (``sigma:checkpoint=P,parser=rules,grounding=false``).

:meth:`SigmaMethod.params` names every parameter, so that ``sigma:`` + its spec builds the
same method again (the Ray engine rebuilds methods in its actors from the spec).

:mod:`sigma_iml.methods` imports this module by name when the method registry is first
used; torch and transformers are imported only when a method is built, so listing the
registered methods stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.pair import Pair
from ..device import Precision
from ..instruction.config import InstructionConfig, ParserChoice
from ..methods import METHODS, MaskMethod, Prediction

#: Keys of ``Prediction.extras["timings"]`` naming which parser produced a pair's tuple;
#: each holds the same seconds as ``parse``, so timings can be grouped by parser kind.
PARSER_STAGES = ("parser_llm", "parser_rules", "parser_cache_hit")

#: The method's parameters that override an instruction setting, and the setting each sets.
_INSTRUCTION_PARAMETERS = {
    "parser": "parser",
    "parser_model": "parser_model",
    "grounding": "grounding",
    "detector": "detector",
    "segmenter": "segmenter",
    "parse_cache": "cache",
}


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
        precision: Precision = "auto",
        parser: ParserChoice | None = None,
        parser_model: str | None = None,
        grounding: bool | None = None,
        detector: str | None = None,
        segmenter: str | None = None,
        parse_cache: str | None = None,
        compile: bool = False,
    ):
        from ..models.checkpoint import instruction_settings
        from .annotator import Annotator

        self.checkpoint = Path(checkpoint)
        self.batch_size = batch_size
        self.device = device
        self.local_files_only = local_files_only
        self.intermediates = intermediates
        self.precision = precision
        self.compile = compile
        self.annotator = Annotator.from_checkpoint(
            self.checkpoint,
            device=device,
            batch_size=batch_size,
            precision=precision,
            local_files_only=local_files_only,
            compile=compile,
        )
        given = {
            "parser": parser,
            "parser_model": parser_model,
            "grounding": grounding,
            "detector": detector,
            "segmenter": segmenter,
            "parse_cache": parse_cache,
        }
        #: The instruction parameters as given (None: not given), for :meth:`params`.
        self.instruction_overrides = {k: v for k, v in given.items() if v is not None}
        head = self.annotator.config.head
        self.branch = None
        self.instruction_config: InstructionConfig | None = None
        # A checkpoint trained without the instruction branch (ablation row) takes no prior.
        if instruction and head.use_instruction:
            from ..instruction.branch import InstructionBranch

            settings: dict[str, Any] = {
                "device": device,
                "batch_size": batch_size,
                "local_files_only": local_files_only,
                **instruction_settings(self.checkpoint),
            }
            settings.update(
                {_INSTRUCTION_PARAMETERS[k]: v for k, v in self.instruction_overrides.items()}
            )
            # The concept maps' floor must be the ε the network was built with.
            settings["epsilon"] = head.prior_epsilon
            self.instruction_config = InstructionConfig.from_dict(settings, "sigma method")
            self.branch = InstructionBranch(self.instruction_config)

    def params(self) -> dict[str, Any]:
        """Every parameter: ``sigma:`` + these builds the same method again. With the
        instruction branch on, the instruction parameters are the settings in effect
        (from the checkpoint's ``instruction.json`` when not given), so records say which
        models ran; a setting that is None (no LLM named, no parse cache) is left out."""
        params: dict[str, Any] = {
            "checkpoint": str(self.checkpoint),
            "batch_size": self.batch_size,
            "device": self.device,
            "precision": self.precision,
            "local_files_only": self.local_files_only,
            "intermediates": self.intermediates,
            "instruction": self.branch is not None,
            "compile": self.compile,
        }
        if self.instruction_config is None:
            params.update(self.instruction_overrides)
            return params
        settings = self.instruction_config
        for name, setting in _INSTRUCTION_PARAMETERS.items():
            value = getattr(settings, setting)
            if value is not None:
                params[name] = value
        return params

    @property
    def precisions(self) -> dict[str, str]:
        """``bf16`` or ``fp32`` per model stage as it runs: ``network``, and the
        instruction branch's ``parser`` and ``grounding`` where they run models."""
        ran = {"network": self.annotator.precision_name}
        if self.branch is not None:
            ran.update(self.branch.precisions)
        return ran

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
                "precision": self.precisions,
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
