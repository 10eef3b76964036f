"""The registered method ``sigma`` (``sigma:checkpoint=PATH``) for ``evaluate`` and
``annotate``.

This module imports torch and transformers only when a method is built, so listing the
registered methods stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.pair import Pair
from ..methods import METHODS, MaskMethod, Prediction


@METHODS.register("sigma")
class SigmaMethod(MaskMethod):
    """SIGMA: DINOv2 semantic differencing with cross-modal refinement (checkpoint=PATH)."""

    name = "sigma"

    def __init__(
        self,
        checkpoint: Path,
        batch_size: int = 4,
        device: str = "auto",
        local_files_only: bool = False,
        intermediates: bool = False,
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

    def params(self) -> dict[str, Any]:
        return {
            "checkpoint": str(self.checkpoint),
            "batch_size": self.batch_size,
            "device": self.device,
        }

    def predict_batch(self, pairs: Sequence[Pair]) -> list[Prediction]:
        # No instruction prior yet (the instruction branch is its own module): the model
        # uses its uniform ε prior, as it does for instruction-free data (OpenSDI).
        annotations = self.annotator.annotate(pairs, intermediates=self.intermediates)
        predictions = []
        for annotation in annotations:
            extras: dict[str, Any] = {"input_size": list(self.annotator.config.backbone.image_size)}
            if self.intermediates:
                extras["intermediates"] = annotation.intermediates
            predictions.append(Prediction(probability=annotation.probability, extras=extras))
        return predictions
