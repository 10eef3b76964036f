"""The frozen DINOv2 shared encoder (paper §3.2.1, docs/design.md step 2).

The transformers model is loaded with ``from_pretrained`` (hub id or local folder,
safetensors only) and its encoder is cut after the deepest block the configuration
takes: the later blocks are dropped from the module, so they are neither computed nor
kept in memory. The blocks are run one by one here rather than through
``Dinov2Model.forward``, which always runs every block it holds and applies the final
LayerNorm only to the last one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ConfigError
from .config import BackboneConfig

#: transformers model types whose modules (embeddings, encoder.layer, layernorm) this
#: wrapper knows how to run.
SUPPORTED_MODEL_TYPES = ("dinov2", "dinov2_with_registers")


class DinoBackbone(nn.Module):
    """Frozen DINOv2 returning patch-token maps of chosen blocks.

    ``forward(images)`` takes ``(B, 3, H, W)`` floats in [0, 1] at
    ``config.image_size``, normalises them and returns one ``(B, C, H/p, W/p)`` map per
    configured layer, CLS and register tokens dropped.
    """

    def __init__(self, model: nn.Module, config: BackboneConfig):
        super().__init__()
        model_type = getattr(model.config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"backbone {config.name_or_path!r} is a {model_type!r} model; expected one of "
                f"{SUPPORTED_MODEL_TYPES}"
            )
        depth = len(model.encoder.layer)
        if max(config.layers) >= depth:
            raise ConfigError(
                f"backbone.layers {config.layers} asks for block {max(config.layers)} but "
                f"{config.name_or_path!r} has {depth} blocks (0..{depth - 1})"
            )
        self.patch_size = int(model.config.patch_size)
        for side in config.image_size:
            if side % self.patch_size:
                raise ConfigError(
                    f"backbone.image_size {config.image_size} is not a multiple of the patch size "
                    f"{self.patch_size}"
                )
        self.config = config
        self.hidden_size = int(model.config.hidden_size)
        self.total_blocks = depth
        # CLS first, then any register tokens, then the patch tokens.
        self.num_prefix_tokens = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)

        # Keep only the blocks up to the deepest one taken: the rest are never needed.
        model.encoder.layer = nn.ModuleList(list(model.encoder.layer)[: max(config.layers) + 1])
        self.model = model
        self.model.requires_grad_(False)
        self.model.eval()
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(
        cls,
        config: BackboneConfig,
        *,
        local_files_only: bool = False,
        name_or_path: str | None = None,
    ) -> DinoBackbone:
        """Load ``name_or_path`` (default ``config.name_or_path``) through transformers.

        Only safetensors weights are accepted (``use_safetensors=True``): a folder with
        only pickled ``pytorch_model.bin`` weights is refused rather than unpickled.
        """
        from transformers import AutoModel

        from ..hub import resolve_pretrained

        source, local_files_only = resolve_pretrained(
            name_or_path or config.name_or_path, local_files_only
        )
        try:
            model = AutoModel.from_pretrained(
                source,
                local_files_only=local_files_only,
                use_safetensors=True,
                attn_implementation=config.attn_implementation,
            )
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot load the DINOv2 backbone {source!r}: {err}") from err
        return cls(model, config)

    @property
    def num_blocks_run(self) -> int:
        return len(self.model.encoder.layer)

    def grid_size(self, image_size: tuple[int, int] | None = None) -> tuple[int, int]:
        height, width = image_size or self.config.image_size
        return height // self.patch_size, width // self.patch_size

    def train(self, mode: bool = True) -> DinoBackbone:
        # Frozen: dropout and any other train-time behaviour stay off whatever the caller does.
        super().train(False)
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        batch, _, height, width = images.shape
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        wanted = set(self.config.layers)
        outputs: list[torch.Tensor] = []
        # The backbone is frozen: no autograd graph through it, whatever the caller's mode.
        with torch.no_grad():
            hidden = self.model.embeddings((images - self.mean) / self.std)
            for index, block in enumerate(self.model.encoder.layer):
                hidden = block(hidden)
                if index in wanted:
                    taken = self.model.layernorm(hidden) if self.config.apply_layernorm else hidden
                    patches = taken[:, self.num_prefix_tokens :, :]
                    outputs.append(
                        patches.transpose(1, 2).reshape(batch, self.hidden_size, grid_h, grid_w)
                    )
        return outputs


def backbone_in_dtype(
    backbone: DinoBackbone, dtype: torch.dtype | None, *, in_place: bool = False
) -> DinoBackbone:
    """The backbone to run under autocast ``dtype``: ``backbone`` itself for float32
    (``None``) or when its weights already are ``dtype``, else a copy holding them in
    ``dtype`` (the original keeps its float32 weights for whoever else uses it), or,
    with ``in_place``, ``backbone`` converted (for a caller that owns the network).

    Why: autocast caches the low-precision cast of a weight only for leaf tensors that
    require grad, so a frozen backbone's ~86 M float32 weights are cast again at every
    linear of every call. Held in bf16 they are not: on a CPU with AMX the DINOv2-B
    forward of a pair went from 1.45 to 1.22 s (benchmarks/README.md, "bf16 weights").
    """
    if dtype is None:
        return backbone
    weight = next(backbone.parameters(), None)
    if weight is None or weight.dtype == dtype:
        return backbone
    return (backbone if in_place else copy.deepcopy(backbone)).to(dtype)
