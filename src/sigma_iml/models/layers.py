"""Building blocks shared by the SIGMA head: attention, FFN, norms, position codes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map, per position.

    Unlike BatchNorm it behaves the same at training batch 8 and annotation batch 1.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Attention(nn.Module):
    """Multi-head attention through ``F.scaled_dot_product_attention``.

    Queries, keys and values are given separately, so one module serves self-attention,
    cross-level attention and cross-modal attention.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        return x.view(batch, tokens, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = query.shape
        attended = F.scaled_dot_product_attention(
            self._split(self.q(query)),
            self._split(self.k(key)),
            self._split(self.v(value)),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, dim))


class FeedForward(nn.Module):
    def __init__(self, dim: int, ratio: float, dropout: float = 0.0):
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def sincos_position_codes(
    height: int, width: int, dim: int, *, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Fixed 2-D sine-cosine codes, ``(height * width, dim)``, row-major like the tokens.

    Half the channels encode the row, half the column (as in MAE and DETR). Fixed codes
    need no parameters and work at any grid size, so the input size stays configurable.
    """
    quarter = dim // 4
    frequencies = 1.0 / (
        10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    )
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None] * frequencies
    cols = torch.arange(width, device=device, dtype=torch.float32)[:, None] * frequencies
    row_codes = torch.cat([rows.sin(), rows.cos()], dim=1)[:, None, :].expand(
        height, width, 2 * quarter
    )
    col_codes = torch.cat([cols.sin(), cols.cos()], dim=1)[None, :, :].expand(
        height, width, 2 * quarter
    )
    codes = torch.cat([row_codes, col_codes], dim=2).reshape(height * width, 4 * quarter)
    if codes.shape[1] < dim:  # dim not a multiple of 4: pad (config validation prevents it)
        codes = F.pad(codes, (0, dim - codes.shape[1]))
    return codes.to(dtype)


def grid_position_codes(maps: torch.Tensor) -> torch.Tensor:
    """:func:`sincos_position_codes` for the token grid of ``(B, d, h, w)`` maps, on
    their device and in their dtype."""
    _, dim, height, width = maps.shape
    return sincos_position_codes(height, width, dim, device=maps.device, dtype=maps.dtype)


def tokens_of(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` map to ``(B, H*W, C)`` tokens."""
    return x.flatten(2).transpose(1, 2)


def map_of(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, H*W, C)`` tokens back to a ``(B, C, H, W)`` map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)


def trunc_normal_init(module: nn.Module) -> None:
    """ViT-style initialisation of the head's linear layers (std 0.02, zero bias)."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.trunc_normal_(sub.weight, std=0.02)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Conv2d):
            nn.init.kaiming_normal_(sub.weight, mode="fan_out", nonlinearity="relu")
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


__all__ = [
    "Attention",
    "ChannelLayerNorm",
    "FeedForward",
    "map_of",
    "sincos_position_codes",
    "tokens_of",
    "trunc_normal_init",
]
