"""Pixel-level F1 and IoU, counted per image and reduced two ways.

Counting is split from reducing (as segmentation_models.pytorch does):
:func:`confusion_counts` gives one image's TP/FP/FN/TN; :class:`PixelScores`
accumulates them and reduces

- ``"imagewise"`` — F1 and IoU per image, then the mean over images. This is
  IMDL-BenCo's definition (``PixelF1`` / ``PixelIOU`` in ``IMDLBenCo/evaluation``),
  including its smoothing constants: ``P = TP/(TP+FP+1e-8)``, ``R = TP/(TP+FN+1e-8)``,
  ``F1 = 2PR/(P+R+1e-8)``, ``IoU = TP/(TP+FP+FN+1e-8)``. The paper's tables use it.
- ``"micro"`` — counts summed over the dataset, then one F1 and IoU (the change-
  detection convention).

An image whose ground truth is empty scores 0 under IMDL-BenCo whatever the prediction
(TP is 0). Such images are excluded from both reductions by default and counted in
``n_empty_gt``; ``include_empty=True`` keeps them (IMDL-BenCo's behaviour).
All scores are fractions in [0, 1]. A prediction is positive where ``pred > 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

#: IMDL-BenCo's smoothing constant for pixel F1 and IoU.
EPS = 1e-8
THRESHOLD = 0.5


@dataclass(frozen=True)
class ConfusionCounts:
    """One image's pixel counts: true/false positives and negatives."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def gt_positive(self) -> int:
        return self.tp + self.fn


def confusion_counts(
    pred: np.ndarray, target: np.ndarray, threshold: float = THRESHOLD
) -> ConfusionCounts:
    """Pixel counts of one image. ``pred`` is a probability map or a binary mask (positive
    where ``> threshold``); ``target`` a bool or 0/1 mask of the same shape."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {pred.shape} differs from ground-truth shape {target.shape}"
        )
    predicted = pred > threshold if pred.dtype != np.bool_ else pred
    actual = target.astype(bool)
    tp = int(np.count_nonzero(predicted & actual))
    fp = int(np.count_nonzero(predicted & ~actual))
    fn = int(np.count_nonzero(~predicted & actual))
    tn = int(actual.size - tp - fp - fn)
    return ConfusionCounts(tp, fp, fn, tn)


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """F1 with IMDL-BenCo's smoothing (0 when TP is 0)."""
    precision = tp / (tp + fp + EPS)
    recall = tp / (tp + fn + EPS)
    return float(2 * precision * recall / (precision + recall + EPS))


def iou_from_counts(tp: float, fp: float, fn: float) -> float:
    """IoU with IMDL-BenCo's smoothing: intersection / (union + 1e-8)."""
    return float(tp / (tp + fp + fn + EPS))


#: How :class:`PixelScores` reduces its per-image counts (see the module docstring).
Reduction = Literal["imagewise", "micro"]


@dataclass
class PixelScores:
    """Streams per-image counts; reduces to per-image-mean and micro F1 / IoU."""

    include_empty: bool = False
    f1_per_image: list[float] = field(default_factory=list)
    iou_per_image: list[float] = field(default_factory=list)
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    n_empty_gt: int = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> ConfusionCounts:
        """Add one image; returns its counts (also for an excluded empty-GT image)."""
        return self.add_counts(confusion_counts(pred, target))

    def add_counts(self, counts: ConfusionCounts) -> ConfusionCounts:
        """Add one image given its counts (e.g. read back from annotation records)."""
        if counts.gt_positive == 0:
            self.n_empty_gt += 1
            if not self.include_empty:
                return counts
        self.f1_per_image.append(f1_from_counts(counts.tp, counts.fp, counts.fn))
        self.iou_per_image.append(iou_from_counts(counts.tp, counts.fp, counts.fn))
        self.tp += counts.tp
        self.fp += counts.fp
        self.fn += counts.fn
        self.tn += counts.tn
        return counts

    @property
    def n(self) -> int:
        """Images that were scored."""
        return len(self.f1_per_image)

    def f1(self, reduction: Reduction = "imagewise") -> float:
        if reduction == "micro":
            return f1_from_counts(self.tp, self.fp, self.fn)
        return float(np.mean(self.f1_per_image)) if self.f1_per_image else float("nan")

    def iou(self, reduction: Reduction = "imagewise") -> float:
        if reduction == "micro":
            return iou_from_counts(self.tp, self.fp, self.fn)
        return float(np.mean(self.iou_per_image)) if self.iou_per_image else float("nan")

    def summary(self) -> dict[str, float | int | None]:
        """Scores as a JSON-ready dict; metrics are None when no image was scored."""
        scored = self.n > 0
        return {
            "n": self.n,
            "f1": self.f1("imagewise") if scored else None,
            "iou": self.iou("imagewise") if scored else None,
            "f1_micro": self.f1("micro") if scored else None,
            "iou_micro": self.iou("micro") if scored else None,
            "n_empty_gt": self.n_empty_gt,
            "empty_gt_included": self.include_empty,
        }
