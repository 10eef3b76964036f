"""Training losses (paper §3.3; the equations were lost, each term is our reading).

- ``L_seg`` — BCE + soft Dice against the exact mask (:func:`segmentation_loss`).
- ``L_cal`` — noise calibration: the pair (edited, VAE round trip of edited) has an
  all-zero target; BCE towards 0 (:func:`calibration_loss`). Dice is left out: with an
  empty target it only measures the predicted area, on a scale that depends on the
  image size.
- ``L_st`` — EMA self-training: BCE towards the teacher's hard labels on its confident
  pixels only (:func:`self_training_loss`), optionally only for masks whose QES passes.
- ``L_dis`` — edit-noise disentanglement: ``max(0, cos(v_real, v_noise) - margin)``
  between the DRB difference vectors of the real pair and of the noise pair, averaged
  over the teacher's predicted-edit support (:func:`disentanglement_loss`).

All losses take logits, compute in float32 (safe under bf16 autocast) and return a
scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..methods import QES_HIGH, QES_LOW


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per image, averaged over the batch. ``smooth`` keeps an image with
    an empty target defined (it then pushes the prediction towards empty)."""
    probability = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    intersection = (probability * target).sum(1)
    total = probability.sum(1) + target.sum(1)
    return (1.0 - (2.0 * intersection + smooth) / (total + smooth)).mean()


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, bce_weight: float = 1.0, dice_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_seg = bce_weight * BCE + dice_weight * Dice`` and its parts (for the log)."""
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target.float())
    dice = dice_loss(logits, target)
    total = bce_weight * bce + dice_weight * dice
    return total, {"bce": float(bce.detach()), "dice": float(dice.detach())}


def calibration_loss(noise_logits: torch.Tensor) -> torch.Tensor:
    """``L_cal``: the noise pair's prediction against an all-zero target (BCE)."""
    logits = noise_logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def qes(probability: torch.Tensor) -> torch.Tensor:
    """Web-IML's quality score per image, ``#(p > 15/16) / #(p > 1/16)``; ``(B,)``.
    An image predicting nothing (no pixel above 1/16) scores 0, the peer's convention and
    the annotation's (``annotation.quality.qes``; docs/design.md "Quality scores")."""
    flat = probability.float().flatten(1)
    support = (flat > QES_LOW).sum(1)
    confident = (flat > QES_HIGH).sum(1)
    return confident / support.clamp(min=1)


def pseudo_labels(
    teacher_probability: torch.Tensor, threshold: float, min_qes: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's hard labels (``p > 0.5``) and the weight of each pixel: 1 where the
    teacher is confident (``p > threshold`` or ``p < 1 - threshold``) and, with
    ``min_qes``, its image's mask passes the QES filter; 0 elsewhere."""
    probability = teacher_probability.float()
    labels = (probability > 0.5).float()
    confident = (probability > threshold) | (probability < 1.0 - threshold)
    weights = confident.float()
    if min_qes is not None:
        passing = (qes(probability) >= min_qes).float()
        weights = weights * passing.view(-1, *([1] * (probability.dim() - 1)))
    return labels, weights


def self_training_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """``L_st``: BCE towards the pseudo-labels, averaged over the weighted (confident)
    pixels; 0 (with a gradient path) when no pixel is confident."""
    logits = student_logits.float()
    per_pixel = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (per_pixel * weights).sum() / weights.sum().clamp(min=1.0)


def disentanglement_loss(
    real_levels: list[torch.Tensor],
    noise_levels: list[torch.Tensor],
    support: torch.Tensor,
    margin: float = 0.0,
) -> torch.Tensor:
    """``L_dis``: mean over levels and over the support positions of
    ``max(0, cos(v_real, v_noise) - margin)``, with ``v`` the ``(B, d, h, w)`` DRB
    difference vectors. ``support`` is ``(B, 1, H, W)`` in [0, 1] at any size (the
    teacher's predicted-edit mask); it is area-pooled to the grid and a position counts
    when at least half of it is predicted edited. 0 when the support is empty."""
    grid = real_levels[0].shape[-2:]
    pooled = F.adaptive_avg_pool2d(support.float(), grid) >= 0.5
    weights = pooled.float()
    count = weights.sum()
    losses = []
    for real, noise in zip(real_levels, noise_levels, strict=True):
        cosine = F.cosine_similarity(real.float(), noise.float(), dim=1, eps=1e-6)[:, None]
        losses.append(((cosine - margin).clamp(min=0.0) * weights).sum() / count.clamp(min=1.0))
    return torch.stack(losses).mean()
