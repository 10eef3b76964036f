"""Instruction evidence, bidirectional cross-modal refinement (BCMR) and consensus.

Paper §3.2.2 (last paragraph) and §3.2.3, docs/design.md steps 5 (last bullet) and 6.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import HeadConfig
from .layers import Attention, FeedForward, grid_position_codes, map_of, tokens_of


def uniform_prior(
    batch: int, height: int, width: int, epsilon: float, *, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The prior with no instruction (or a global edit): ``P = ε·1`` (paper Eq. 8)."""
    return torch.full((batch, 1, height, width), float(epsilon), device=device, dtype=dtype)


class InstructionEvidence(nn.Module):
    """``G0 = ReLU(Conv(P))`` on the token grid, ``P`` area-pooled to the grid."""

    def __init__(self, dim: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(1, dim, kernel_size=kernel_size, padding=kernel_size // 2)

    def forward(
        self, prior: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``G0`` ``(B, d, h, w)`` and the pooled prior ``(B, 1, h, w)``."""
        if prior.dim() != 4 or prior.shape[1] != 1:
            raise ValueError(f"the prior must be (B, 1, H, W), got {tuple(prior.shape)}")
        # Area pooling: each token gets the mean prior over the pixels it covers
        # (adaptive pooling is exact area pooling when the sizes divide).
        pooled = F.adaptive_avg_pool2d(prior, grid) if tuple(prior.shape[-2:]) != grid else prior
        return F.relu(self.conv(pooled)), pooled


class CrossModalStep(nn.Module):
    """One BCMR iteration (Eq. 9): first the visual stream attends to the instruction
    stream, then the instruction stream attends to the freshly updated visual stream."""

    def __init__(self, dim: int, num_heads: int, ffn_ratio: float, dropout: float = 0.0):
        super().__init__()
        self.visual_q_norm = nn.LayerNorm(dim)
        self.visual_kv_norm = nn.LayerNorm(dim)
        self.visual_attn = Attention(dim, num_heads, dropout)
        self.visual_ffn_norm = nn.LayerNorm(dim)
        self.visual_ffn = FeedForward(dim, ffn_ratio, dropout)
        self.instr_q_norm = nn.LayerNorm(dim)
        self.instr_kv_norm = nn.LayerNorm(dim)
        self.instr_attn = Attention(dim, num_heads, dropout)
        self.instr_ffn_norm = nn.LayerNorm(dim)
        self.instr_ffn = FeedForward(dim, ffn_ratio, dropout)

    def forward(
        self, visual: torch.Tensor, instruction: torch.Tensor, position: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pos = 0 if position is None else position
        q = self.visual_q_norm(visual)
        kv = self.visual_kv_norm(instruction)
        visual = visual + self.visual_attn(q + pos, kv + pos, kv)
        visual = visual + self.visual_ffn(self.visual_ffn_norm(visual))

        q = self.instr_q_norm(instruction)
        kv = self.instr_kv_norm(visual)  # V_k, not V_{k-1}: the paper's asymmetric order
        instruction = instruction + self.instr_attn(q + pos, kv + pos, kv)
        instruction = instruction + self.instr_ffn(self.instr_ffn_norm(instruction))
        return visual, instruction


class BidirectionalRefinement(nn.Module):
    """K :class:`CrossModalStep` iterations over ``(V0, G0)`` (K = 0 passes both through),
    sized by the head config (``bcmr_steps``, widths, dropout)."""

    def __init__(self, head: HeadConfig):
        super().__init__()
        self.positional_encoding = head.positional_encoding
        self.steps = nn.ModuleList(
            CrossModalStep(head.embed_dim, head.num_heads, head.ffn_ratio, head.dropout)
            for _ in range(head.bcmr_steps)
        )

    def forward(
        self, visual: torch.Tensor, instruction: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps ``(B, d, h, w)`` in, refined ``(V_K, G_K)`` maps out."""
        if not self.steps:
            return visual, instruction
        height, width = visual.shape[-2:]
        position = grid_position_codes(visual) if self.positional_encoding else None
        v, g = tokens_of(visual), tokens_of(instruction)
        for step in self.steps:
            v, g = step(v, g, position)
        return map_of(v, height, width), map_of(g, height, width)


class Consensus(nn.Module):
    """``C = Conv1x1([V_K; G_K])`` (Eq. 10); with the instruction branch off,
    ``C = Conv1x1(V_0)`` so the decoder's input keeps its shape."""

    def __init__(self, dim: int, use_instruction: bool):
        super().__init__()
        self.proj = nn.Conv2d(2 * dim if use_instruction else dim, dim, kernel_size=1)

    def forward(self, visual: torch.Tensor, instruction: torch.Tensor | None) -> torch.Tensor:
        inputs = visual if instruction is None else torch.cat([visual, instruction], dim=1)
        return self.proj(inputs)
