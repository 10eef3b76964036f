"""Difference refinement blocks (DRB), paper §3.2.1 Eq. 5–6, docs/design.md step 4.

Each block: within-level self-attention over a level's tokens, cross-level attention
(queries at level l, keys and values from the tokens of all levels), FFN with GELU, all
pre-norm residual. Visual evidence ``V0 = Conv3x3(concat_l D_l)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import HeadConfig
from .layers import Attention, FeedForward, grid_position_codes, map_of, tokens_of


class DifferenceRefinementBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_levels: int,
        ffn_ratio: float,
        *,
        cross_level: bool = True,
        cross_level_pool: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.cross_level_pool = cross_level_pool
        self.self_norm = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads, dropout)
        self.cross_level = cross_level
        if cross_level:
            self.cross_norm = nn.LayerNorm(dim)
            self.cross_attn = Attention(dim, num_heads, dropout)
            # Our reading: a learned per-level code on the keys, so a query can tell the
            # level a key comes from (all levels share one patch lattice and positions).
            self.level_embed = nn.Parameter(torch.zeros(num_levels, dim))
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_ratio, dropout)

    def _pooled(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(..., N, d)`` tokens on an ``h x w`` grid, average-pooled by
        ``cross_level_pool`` (a partial last window is averaged over what it covers)."""
        if self.cross_level_pool == 1:
            return tokens
        *lead, count, dim = tokens.shape
        maps = tokens.reshape(-1, grid[0], grid[1], dim).permute(0, 3, 1, 2)
        pooled = F.avg_pool2d(
            maps,
            self.cross_level_pool,
            ceil_mode=True,
            count_include_pad=False,
        )
        return pooled.flatten(2).transpose(1, 2).reshape(*lead, -1, dim)

    def forward(
        self,
        tokens: torch.Tensor,
        position: torch.Tensor | None,
        grid: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """``tokens``: ``(B, L, N, d)``, the N = h·w tokens of each of L levels on the
        ``grid`` ``(h, w)``; ``position``: ``(N, d)`` codes added to queries and keys, or
        None."""
        batch, levels, count, dim = tokens.shape
        pos = 0 if position is None else position

        x = tokens.reshape(batch * levels, count, dim)
        h = self.self_norm(x)
        x = x + self.self_attn(h + pos, h + pos, h)
        x = x.reshape(batch, levels, count, dim)

        if self.cross_level:
            h = self.cross_norm(x)
            if self.cross_level_pool > 1:
                if grid is None:
                    raise ValueError("pooled cross-level attention needs the token grid")
                key_source = self._pooled(h, grid)
                key_pos = 0 if position is None else self._pooled(position, grid)
            else:
                key_source, key_pos = h, pos
            kv_count = key_source.shape[2]
            keys = (key_source + key_pos + self.level_embed[:, None, :]).reshape(
                batch, levels * kv_count, dim
            )
            values = key_source.reshape(batch, levels * kv_count, dim)
            # The queries of all levels go through one call: attention is computed per
            # query, so this equals running each level's queries against all keys.
            queries = (h + pos).reshape(batch, levels * count, dim)
            x = x + self.cross_attn(queries, keys, values).reshape(batch, levels, count, dim)

        return x + self.ffn(self.ffn_norm(x))


class DifferenceRefinement(nn.Module):
    """A stack of DRBs (possibly empty: Table 3's "+msdb" row) and the V0 projection,
    sized by the head config (``num_drb``, ``drb_*``, widths, dropout)."""

    def __init__(self, head: HeadConfig, num_levels: int):
        super().__init__()
        self.positional_encoding = head.positional_encoding
        self.blocks = nn.ModuleList(
            DifferenceRefinementBlock(
                head.embed_dim,
                head.num_heads,
                num_levels,
                head.ffn_ratio,
                cross_level=head.drb_cross_level,
                cross_level_pool=head.drb_cross_level_pool,
                dropout=head.dropout,
            )
            for _ in range(head.num_drb)
        )
        self.evidence = nn.Conv2d(
            num_levels * head.embed_dim, head.embed_dim, kernel_size=3, padding=1
        )

    def forward(self, levels: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``levels``: L maps ``(B, d, h, w)``. Returns the refined maps and ``V0``."""
        height, width = levels[0].shape[-2:]
        if self.blocks:
            tokens = torch.stack([tokens_of(lv) for lv in levels], dim=1)
            position = grid_position_codes(levels[0]) if self.positional_encoding else None
            for block in self.blocks:
                tokens = block(tokens, position, (height, width))
            levels = [map_of(tokens[:, i], height, width) for i in range(tokens.shape[1])]
        return levels, self.evidence(torch.cat(levels, dim=1))
