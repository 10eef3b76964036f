"""Action-conditioned spatial fusion (ACSF, the paper's Eq. 8) and pooling to the grid.

``P = A_e`` for add (the new object is only in the edited image), ``P = A_o`` for remove
(the object is only in the original), ``P = A_o ⊙ A_e`` for replace and attribute change
(the patch must show the original concept before and the edited concept after), and the
uniform ``P = ε·1`` for global edits ("weak instruction evidence, letting the semantic
branch dominate"). ``P`` then becomes the network's ``prior`` input, area-pooled to its
token grid (37x37 for DINOv2-B at 518 px).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .edit_tuple import ACTIONS
from .grounding import DEFAULT_EPSILON


def fuse(
    action: str,
    original_map: np.ndarray,
    edited_map: np.ndarray,
    epsilon: float = DEFAULT_EPSILON,
) -> np.ndarray:
    """The intent map ``P`` of Eq. 8 from the concept maps ``A_o``, ``A_e`` (same shape,
    values in [ε, 1]); float32 in [0, 1]."""
    if action not in ACTIONS:
        raise ConfigError(f"unknown action {action!r}")
    a_o = np.asarray(original_map, dtype=np.float32)
    a_e = np.asarray(edited_map, dtype=np.float32)
    if a_o.shape != a_e.shape:
        raise ValueError(f"concept maps differ in shape: {a_o.shape} and {a_e.shape}")
    if action == "add":
        return a_e.copy()
    if action == "remove":
        return a_o.copy()
    if action in ("replace", "attribute change"):
        return a_o * a_e
    return np.full(a_o.shape, epsilon, dtype=np.float32)


def pool_to_grid(intent_map: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Area pooling (``adaptive_avg_pool2d``) of ``(H, W)`` to ``grid_hw``, float32 in
    [0, 1]. A map smaller than the grid is upsampled bilinearly instead."""
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(intent_map, dtype=np.float32))[None, None]
    height, width = grid_hw
    if tensor.shape[-2] >= height and tensor.shape[-1] >= width:
        pooled = F.adaptive_avg_pool2d(tensor, (height, width))
    else:
        pooled = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
    return pooled[0, 0].clamp(0.0, 1.0).numpy()


def prior_batch(intent_maps: list[np.ndarray], grid_hw: tuple[int, int]):
    """``(B, 1, h, w)`` float32 tensor of pooled intent maps: the network's ``prior``."""
    import torch

    return torch.from_numpy(np.stack([pool_to_grid(m, grid_hw) for m in intent_maps]))[:, None]
