"""Splitting a pair's change mask by its intent: intended change, side effect, not executed.

Given the **intent** (where the instruction asked for a change: the instruction branch's
fused prior ``P`` binarised, or a region the dataset provides) and the **change mask**
(a method's mask), :func:`split` returns three masks and the scores of
docs/faithfulness.md:

- *intended change* = change inside the intent dilated by ``dilation`` pixels (editors
  blend a few pixels past any region, and an intent map's edge is approximate);
- *side effect* = change outside the dilated intent, keeping only the 8-connected
  components of at least ``min_side_effect_area`` of the image (a stray pixel of a
  noisy detector is not an edit nobody asked for);
- *not executed* = intent (undilated) where nothing changed.

Scores: ``intent_coverage`` = |change ∩ intent| / |intent| (None when the intent is
empty: nothing was asked, so nothing can be missing), ``side_effect_fraction`` =
|side effect| / |change| (0 when nothing changed), flags ``side_effect``
(``side_effect_fraction > side_effect_flag``) and ``not_executed``
(``intent_coverage < not_executed_flag``).

The paper gives no thresholds for this split (it only argues that SIGMA sees both the
intent and the change); every default below is our reading and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from ..config import ConfigModel


class FaithfulnessSettings(ConfigModel):
    """Thresholds of the split; none is the paper's (it gives none), see each reason."""

    #: Pixels the intent is grown by before change outside it counts as a side effect:
    #: editors feather 1-3 px past the region they were given, and grounded maps are
    #: coarse at their edges (our reading; 5 px covers both on 256-1024 px images).
    dilation: int = Field(default=5, ge=0)
    #: Smallest side-effect component kept, as a fraction of the image's pixels (0.05%:
    #: ~33 px at 256x256, ~520 px at 1024x1024), so isolated noise pixels are not
    #: reported as edits (our reading).
    min_side_effect_area: float = Field(default=0.0005, ge=0.0, le=1.0)
    #: ``P`` above this is intent (``--intent grounding``); 0.5 is the value the maps are
    #: midway between the floor ε and a grounded concept's 1 (our reading).
    intent_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    #: ``side_effect`` is flagged when ``side_effect_fraction`` is above this: any kept
    #: component counts by default (the area floor already filters noise).
    side_effect_flag: float = Field(default=0.0, ge=0.0, le=1.0)
    #: ``not_executed`` is flagged when ``intent_coverage`` is below this: less than a
    #: fifth of the asked-for region changed (our reading; inpainting and recolouring
    #: leave some pixels at their old value, never most of them).
    not_executed_flag: float = Field(default=0.2, ge=0.0, le=1.0)


@dataclass
class FaithfulnessSplit:
    """:func:`split`'s masks (bool ``(H, W)``) and scores."""

    intended: np.ndarray
    side_effect: np.ndarray
    not_executed: np.ndarray
    intent_coverage: float | None
    side_effect_fraction: float
    side_effect_flag: bool
    not_executed_flag: bool

    def scores(self) -> dict[str, Any]:
        """The record's scores (docs/faithfulness.md)."""
        return {
            "intent_coverage": self.intent_coverage,
            "side_effect_fraction": self.side_effect_fraction,
            "side_effect": self.side_effect_flag,
            "not_executed": self.not_executed_flag,
        }


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by a disc of ``radius`` pixels."""
    if radius <= 0 or not mask.any():
        return mask.copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def drop_small_components(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """``mask`` without its 8-connected components of fewer than ``min_pixels`` pixels."""
    if min_pixels <= 1 or not mask.any():
        return mask.copy()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_pixels
    return keep[labels]


def split(
    change: np.ndarray, intent: np.ndarray, settings: FaithfulnessSettings | None = None
) -> FaithfulnessSplit:
    """Split the bool ``change`` mask by the bool ``intent`` region (same ``(H, W)``);
    see the module docstring."""
    settings = settings or FaithfulnessSettings()
    change = np.asarray(change, dtype=bool)
    intent = np.asarray(intent, dtype=bool)
    if change.shape != intent.shape or change.ndim != 2:
        raise ValueError(
            f"the change mask {change.shape} and the intent {intent.shape} must be (H, W) of one size"
        )
    grown = dilate(intent, settings.dilation)
    intended = change & grown
    min_pixels = int(np.ceil(settings.min_side_effect_area * change.size))
    side_effect = drop_small_components(change & ~grown, min_pixels)
    not_executed = intent & ~change
    intent_pixels = int(intent.sum())
    change_pixels = int(change.sum())
    coverage = None if intent_pixels == 0 else float((change & intent).sum()) / intent_pixels
    fraction = 0.0 if change_pixels == 0 else float(side_effect.sum()) / change_pixels
    return FaithfulnessSplit(
        intended=intended,
        side_effect=side_effect,
        not_executed=not_executed,
        intent_coverage=None if coverage is None else round(coverage, 6),
        side_effect_fraction=round(fraction, 6),
        side_effect_flag=fraction > settings.side_effect_flag,
        not_executed_flag=coverage is not None and coverage < settings.not_executed_flag,
    )
