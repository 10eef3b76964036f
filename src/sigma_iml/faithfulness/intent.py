"""Where a pair's edit was asked for: the intent region the split measures against.

Two sources (docs/faithfulness.md):

- ``grounding``: the instruction branch's fused prior ``P`` (the paper's Eq. 8, see
  :mod:`sigma_iml.instruction.fusion`) binarised at ``intent_threshold``. The ``sigma``
  method computes ``P`` anyway and hands it on in ``Prediction.extras["instruction_result"]``;
  for any other method (the pixel baselines) the branch is run here, on the settings
  given (an ``instruction.json`` as ``sigma-iml dev tiny-weights`` writes, or the
  branch's defaults). A global edit asks for the whole image (Eq. 8's uniform ``P`` says
  "no place", not "nowhere"), so its intent is every pixel.
- ``mask``: the region the dataset provides (:attr:`~sigma_iml.data.pair.Pair.intended_mask`:
  a manifest's ``intended_mask`` column, MagicBrush's brush mask). A pair without one is
  an :class:`~sigma_iml.errors.IntentError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from PIL import Image

from ..data.pair import Pair
from ..errors import IntentError
from ..methods import Prediction

IntentSource = Literal["grounding", "mask"]
INTENT_SOURCES: tuple[str, ...] = ("grounding", "mask")


def mask_intent(pair: Pair) -> np.ndarray:
    """The dataset's intended region of ``pair``; IntentError when it has none."""
    if pair.intended_mask is None:
        raise IntentError(
            "no intended region: --intent mask needs a dataset that gives one (a manifest "
            "column 'intended_mask', MagicBrush's brush mask); use --intent grounding",
            item=pair.id,
        )
    return np.asarray(pair.intended_mask, dtype=bool)


def binarise_intent_map(
    intent_map: np.ndarray, size: tuple[int, int], threshold: float
) -> np.ndarray:
    """``P`` resized (bilinear) to ``size`` = ``(width, height)`` and thresholded."""
    array = np.asarray(intent_map, dtype=np.float32)
    if array.ndim != 2:
        raise IntentError(f"an intent map is (H, W), got shape {array.shape}")
    if (array.shape[1], array.shape[0]) != tuple(size):
        array = np.asarray(Image.fromarray(array, mode="F").resize(size, Image.Resampling.BILINEAR))
    return array > threshold


def grounding_intent(result: Any, pair: Pair, threshold: float) -> np.ndarray:
    """The binarised ``P`` of an :class:`~sigma_iml.instruction.branch.InstructionResult`."""
    if result.edit.action == "global":
        return np.ones((pair.size[1], pair.size[0]), dtype=bool)
    return binarise_intent_map(result.intent_map, pair.size, threshold)


class GroundingIntent:
    """``P`` binarised; the branch (built on first use from ``instruction``, settings of
    :class:`~sigma_iml.instruction.branch.InstructionConfig`) runs only for methods that
    give no ``instruction_result``. It is not pickled: a Ray task builds its own."""

    def __init__(self, instruction: Mapping[str, Any] | None, threshold: float):
        self.instruction = dict(instruction or {})
        self.threshold = threshold
        self._branch: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_branch": None}

    def branch(self) -> Any:
        if self._branch is None:
            from ..instruction.branch import InstructionBranch

            self._branch = InstructionBranch.from_config(self.instruction)
        return self._branch

    def __call__(self, pair: Pair, prediction: Prediction) -> np.ndarray:
        result = prediction.extras.get("instruction_result")
        if result is None:
            result = self.branch()([pair])[0]
        return grounding_intent(result, pair, self.threshold)
