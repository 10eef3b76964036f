"""Mask decoder, paper §3.2.4, docs/design.md step 7.

FPN over the refined levels on the token grid: the shallowest level stays at the grid
size (37x37 at 518), level i (0 = shallowest) is adaptively pooled to ceil(grid / 2^i)
(19 and 10 at 518), 1x1 laterals, top-down fusion, a 3x3 convolution on the finest map.
The finest FPN map and the consensus C are upsampled to the input size and
concatenated; a residual fusion block, a terminal residual block and a 1x1 mask head
give the logits.

Single-level configurations (the ablation "baseline", layer 11 only): the one level is
the finest, so it stays at the full grid; the FPN reduces to its lateral and 3x3
convolution, with no top-down path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def pyramid_sizes(grid: tuple[int, int], num_levels: int) -> list[tuple[int, int]]:
    """Grid size of each FPN level: the grid halved once per level, rounded up."""
    return [
        (max(1, math.ceil(grid[0] / 2**i)), max(1, math.ceil(grid[1] / 2**i)))
        for i in range(num_levels)
    ]


class FeaturePyramid(nn.Module):
    def __init__(self, num_levels: int, in_dim: int, fpn_dim: int):
        super().__init__()
        self.laterals = nn.ModuleList(
            nn.Conv2d(in_dim, fpn_dim, kernel_size=1) for _ in range(num_levels)
        )
        # Only the finest output is used downstream, so only it gets the 3x3 convolution.
        self.smooth = nn.Conv2d(fpn_dim, fpn_dim, kernel_size=3, padding=1)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        grid = tuple(levels[0].shape[-2:])
        sizes = pyramid_sizes(grid, len(levels))
        laterals = [
            lateral(F.adaptive_avg_pool2d(level, size) if size != grid else level)
            for lateral, level, size in zip(self.laterals, levels, sizes, strict=True)
        ]
        top = laterals[-1]
        for lateral in reversed(laterals[:-1]):
            top = lateral + F.interpolate(
                top, size=lateral.shape[-2:], mode="bilinear", align_corners=False
            )
        return self.smooth(top)


class ResidualConvBlock(nn.Module):
    """``GELU(x + Norm(Conv3x3(GELU(Norm(Conv3x3(x))))))``. GroupNorm, not BatchNorm: the
    same statistics at training batch 8 and annotation batch 1."""

    def __init__(self, dim: int):
        super().__init__()
        groups = math.gcd(dim, 8)
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(groups, dim)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(groups, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        return self.act(x + self.norm2(self.conv2(y)))


class MaskDecoder(nn.Module):
    def __init__(self, num_levels: int, dim: int, fpn_dim: int, decoder_dim: int):
        super().__init__()
        self.pyramid = FeaturePyramid(num_levels, dim, fpn_dim)
        # The fusion block's input projection (1x1 over [FPN; C]). It is applied before
        # the upsampling: a 1x1 convolution commutes with bilinear upsampling (whose
        # weights sum to 1, so the bias too), and on the token grid it costs ~200x less
        # than at full resolution.
        self.fuse_proj = nn.Conv2d(fpn_dim + dim, decoder_dim, kernel_size=1)
        self.fuse = ResidualConvBlock(decoder_dim)
        self.terminal = ResidualConvBlock(decoder_dim)
        self.mask_head = nn.Conv2d(decoder_dim, 1, kernel_size=1)

    def forward(
        self, levels: list[torch.Tensor], consensus: torch.Tensor, output_size: tuple[int, int]
    ) -> torch.Tensor:
        finest = self.pyramid(levels)
        combined = self.fuse_proj(torch.cat([finest, consensus], dim=1))
        # Channels-last from here on: oneDNN runs these narrow full-resolution 3x3
        # convolutions ~1.7x faster on NHWC than on NCHW input (measured on this CPU);
        # the result is the same up to float rounding.
        combined = combined.contiguous(memory_format=torch.channels_last)
        combined = F.interpolate(combined, size=output_size, mode="bilinear", align_corners=False)
        return self.mask_head(self.terminal(self.fuse(combined)))
