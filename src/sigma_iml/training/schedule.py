"""Learning rate as a pure function of the step: linear warm-up, then cosine annealing
(paper §4.1: "cosine annealing"; the warm-up is the issue's). No scheduler object, so a
resumed run needs nothing but the step to be back on the same curve."""

from __future__ import annotations

import math

import torch

from .config import OptimizerConfig


def learning_rate(step: int, total_steps: int, config: OptimizerConfig) -> float:
    """The rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    total_steps = max(1, total_steps)
    warmup = int(round(config.warmup_fraction * total_steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate


def build_optimizer(params, config: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW (paper) over ``params``; biases and norm weights (1-D tensors) are not
    decayed (ours: the usual practice for transformers)."""
    params = [p for p in params if p.requires_grad]
    decayed = [p for p in params if p.ndim > 1]
    plain = [p for p in params if p.ndim <= 1]
    return torch.optim.AdamW(
        [
            {"params": decayed, "weight_decay": config.weight_decay},
            {"params": plain, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=config.betas,
    )
