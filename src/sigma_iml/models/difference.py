"""Multi-scale difference block (MSDB), paper §3.2.1 Eq. 3–4, docs/design.md step 3.

Per level, with f̂ = f / ||f|| over channels (our reading of the lost Eq. 3):
``d_abs = |f̂o − f̂e|``, ``d_prod = f̂o ⊙ f̂e``, ``d_cos = 1 − <f̂o, f̂e>`` (one channel),
then ``D = GELU(Norm(Conv1x1([fo, fe, d_abs, d_prod, d_cos])))`` (Eq. 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ChannelLayerNorm


class LevelDifference(nn.Module):
    """The difference embedding ``D_l`` of one backbone level."""

    def __init__(
        self, in_dim: int, embed_dim: int, features: tuple[str, ...], keep_raw_features: bool
    ):
        super().__init__()
        self.features = tuple(features)
        self.keep_raw_features = keep_raw_features
        channels = 2 * in_dim if keep_raw_features else 0
        channels += in_dim * (("abs" in self.features) + ("product" in self.features))
        channels += 1 if "cosine" in self.features else 0
        self.proj = nn.Conv2d(channels, embed_dim, kernel_size=1)
        self.norm = ChannelLayerNorm(embed_dim)
        self.act = nn.GELU()

    def forward(
        self, original: torch.Tensor, edited: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``D_l`` ``(B, d, h, w)`` and the cosine distance map ``(B, 1, h, w)``
        (kept whether or not it feeds ``D_l``: it is the per-level difference map the
        annotator shows)."""
        unit_o = F.normalize(original, dim=1, eps=1e-6)
        unit_e = F.normalize(edited, dim=1, eps=1e-6)
        product = unit_o * unit_e
        cosine_distance = 1.0 - product.sum(dim=1, keepdim=True)
        parts: list[torch.Tensor] = []
        if self.keep_raw_features:
            parts += [original, edited]
        if "abs" in self.features:
            parts.append((unit_o - unit_e).abs())
        if "product" in self.features:
            parts.append(product)
        if "cosine" in self.features:
            parts.append(cosine_distance)
        embedded = self.act(self.norm(self.proj(torch.cat(parts, dim=1))))
        return embedded, cosine_distance


class MultiScaleDifference(nn.Module):
    """One :class:`LevelDifference` per backbone level (own projection ``Proj_l``)."""

    def __init__(
        self,
        num_levels: int,
        in_dim: int,
        embed_dim: int,
        features: tuple[str, ...],
        keep_raw_features: bool,
    ):
        super().__init__()
        self.levels = nn.ModuleList(
            LevelDifference(in_dim, embed_dim, features, keep_raw_features)
            for _ in range(num_levels)
        )

    def forward(
        self, originals: list[torch.Tensor], editeds: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns the ``D_l`` list and the cosine-distance maps ``(B, L, h, w)``."""
        if len(originals) != len(self.levels) or len(editeds) != len(self.levels):
            raise ValueError(
                f"expected {len(self.levels)} feature levels per image, got "
                f"{len(originals)} and {len(editeds)}"
            )
        embedded, distances = [], []
        for level, fo, fe in zip(self.levels, originals, editeds, strict=True):
            d, cos = level(fo, fe)
            embedded.append(d)
            distances.append(cos)
        return embedded, torch.cat(distances, dim=1)
