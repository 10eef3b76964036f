"""How trustworthy a predicted mask looks, from its probability map alone.

No ground truth is needed, so these scores rank millions of machine-made masks and let
an export keep the good ones (``--min-quality``).

- ``qes`` — the Web-IML paper's quality evaluation score: ``#(p > 15/16) / #(p > 1/16)``,
  the share of the predicted region that is predicted confidently. 1.0 for any binary
  map, so it says nothing about the pixel-difference baselines.
- ``confidence`` — the mean of ``|2p - 1|`` over the same region (``p > 1/16``): like QES
  but graded, so a region at p = 0.9 is not scored like one at p = 0.55.
- ``area`` — the share of the image predicted as edited (``p > 0.5``); not a quality by
  itself, but an empty or all-edited mask is a warning sign and it is cheap to keep.

A map that predicts nothing (no pixel above 1/16) scores 0 on ``qes`` and
``confidence``: the peer's convention, used everywhere in this package (training's QES
filter too, docs/design.md "Quality scores"), so an empty mask fails any positive
``--min-quality``. :data:`DEFAULT_QUALITY_METRIC` is the one
``--min-quality`` filters on; ``docs/annotation.md`` has the measurement that chose it.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np

from ..methods import MASK_THRESHOLD, QES_HIGH, QES_LOW

QualityMetric = Literal["qes", "confidence"]
QUALITY_METRICS: tuple[QualityMetric, ...] = get_args(QualityMetric)
DEFAULT_QUALITY_METRIC: QualityMetric = "confidence"


def qes(probability: np.ndarray) -> float:
    """Web-IML's QES, ``#(p > 15/16) / #(p > 1/16)``; 0 for an empty prediction."""
    p = np.asarray(probability, dtype=np.float32)
    support = int(np.count_nonzero(p > QES_LOW))
    if support == 0:
        return 0.0
    return int(np.count_nonzero(p > QES_HIGH)) / support


def mean_confidence(probability: np.ndarray) -> float:
    """Mean ``|2p - 1|`` over the pixels with ``p > 1/16``; 0 when there are none."""
    p = np.asarray(probability, dtype=np.float32)
    support = p > QES_LOW
    if not support.any():
        return 0.0
    return float(np.abs(2.0 * p[support] - 1.0).mean())


def quality_scores(probability: np.ndarray) -> dict[str, Any]:
    """Every score of one probability map, rounded for the records."""
    p = np.asarray(probability, dtype=np.float32)
    scores: dict[str, Any] = {"qes": qes(p), "confidence": mean_confidence(p)}
    scores["area"] = float(np.count_nonzero(p > MASK_THRESHOLD)) / max(p.size, 1)
    return {k: (None if v is None else round(float(v), 6)) for k, v in scores.items()}


def passes(quality: dict[str, Any] | None, minimum: float | None, metric: QualityMetric) -> bool:
    """Whether a record's quality clears ``minimum`` (always, when no minimum is set).
    A missing score (a record of a method without probabilities) clears no minimum."""
    if minimum is None:
        return True
    value = (quality or {}).get(metric)
    return value is not None and value >= minimum
