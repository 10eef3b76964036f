"""The faithfulness split as an annotation step: ``annotate --faithfulness``.

:class:`FaithfulnessAnalysis` is handed to :func:`sigma_iml.annotation.annotate` (its
``analyses``); per pair it returns the record field ``"faithfulness"`` and the masks the
annotation writer puts beside the pair's mask (``intended_masks/``,
``side_effect_masks/``, ``not_executed_masks/`` in the pair's shard folder), paths
relative to the run folder (docs/faithfulness.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..data.pair import Pair
from ..errors import ConfigError, IntentError
from ..methods import Prediction
from .intent import INTENT_SOURCES, GroundingIntent, mask_intent
from .split import FaithfulnessSettings, split

#: The record field, and the masks written per pair (each in the folder ``<name>s``).
RECORD_FIELD = "faithfulness"
MASK_FIELDS = ("intended_mask", "side_effect_mask", "not_executed_mask")


class FaithfulnessAnalysis:
    """Intent region (``intent``: ``grounding`` or ``mask``) → :func:`~.split.split`."""

    name = RECORD_FIELD

    def __init__(
        self,
        intent: str = "grounding",
        settings: FaithfulnessSettings | Mapping[str, Any] | None = None,
        instruction: Mapping[str, Any] | None = None,
    ):
        if intent not in INTENT_SOURCES:
            raise ConfigError(f"unknown intent {intent!r}; intents: {', '.join(INTENT_SOURCES)}")
        self.intent = intent
        self.settings = FaithfulnessSettings.from_dict(settings, "faithfulness")
        self._grounding = (
            GroundingIntent(instruction, self.settings.intent_threshold)
            if intent == "grounding"
            else None
        )

    def intent_region(self, pair: Pair, prediction: Prediction) -> np.ndarray:
        if self._grounding is None:
            return mask_intent(pair)
        return self._grounding(pair, prediction)

    def analyse(
        self, pair: Pair, prediction: Prediction, mask: np.ndarray
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(record fields, masks by field name)`` for one pair; raises
        :class:`~sigma_iml.errors.IntentError` naming the pair when it has no intent."""
        intent = self.intent_region(pair, prediction)
        if intent.shape != mask.shape:
            raise IntentError(
                f"the intended region is {intent.shape[1]}x{intent.shape[0]} but the mask is "
                f"{mask.shape[1]}x{mask.shape[0]}",
                item=pair.id,
            )
        result = split(mask, intent, self.settings)
        fields = {
            **result.scores(),
            "intent": self.intent,
            "edit_type": edit_type(pair, prediction),
            "corpus": corpus_name(pair),
        }
        masks = {
            "intended_mask": result.intended,
            "side_effect_mask": result.side_effect,
            "not_executed_mask": result.not_executed,
        }
        return fields, masks


#: ``Pair.meta`` keys naming the edit type (generated pairs, corpus presets), in order.
EDIT_TYPE_KEYS = ("edit_type", "action", "task", "edit_task")
#: ``Pair.meta`` keys naming the corpus or benchmark a pair came from, in order.
CORPUS_KEYS = ("corpus", "benchmark", "dataset", "source_dataset")


def edit_type(pair: Pair, prediction: Prediction) -> str | None:
    """The pair's edit type as the dataset gives it, else the instruction parse's action
    (``sigma`` or a grounding run), else None."""
    for key in EDIT_TYPE_KEYS:
        value = pair.meta.get(key)
        if isinstance(value, str) and value:
            return value
    result = prediction.extras.get("instruction_result")
    if result is not None:
        return str(result.edit.action)
    parsed = prediction.extras.get("parsed_instruction")
    if isinstance(parsed, dict) and isinstance(parsed.get("action"), str):
        return parsed["action"]
    return None


def corpus_name(pair: Pair) -> str | None:
    for key in CORPUS_KEYS:
        value = pair.meta.get(key)
        if isinstance(value, str) and value:
            return value
    return None
