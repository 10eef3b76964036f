"""The EMA teacher of Stage II self-training: ``θ_t ← m θ_t + (1 − m) θ_s`` after every
optimizer step of the student (momentum ``m``, docs/design.md's example 0.999). Buffers are
copied from the student, not averaged."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EmaTeacher(nn.Module):
    def __init__(self, student: nn.Module, momentum: float = 0.999):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError("momentum must lie in [0, 1)")
        self.momentum = momentum
        self.module = copy.deepcopy(student)
        self.module.requires_grad_(False)
        self.module.eval()

    def train(self, mode: bool = True) -> EmaTeacher:
        # The teacher labels: always eval, whatever the caller does.
        super().train(False)
        return self

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        teacher_params = dict(self.module.named_parameters())
        for name, param in student.named_parameters():
            teacher_params[name].mul_(self.momentum).add_(
                param.detach().to(teacher_params[name].dtype), alpha=1.0 - self.momentum
            )
        teacher_buffers = dict(self.module.named_buffers())
        for name, buffer in student.named_buffers():
            teacher_buffers[name].copy_(buffer)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
