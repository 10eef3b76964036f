"""The SIGMA network: frozen DINOv2 + trainable head (differencing, refinement,
instruction evidence, cross-modal refinement, consensus, decoder).

``SigmaNet.forward(original, edited, prior)`` runs everything; ``SigmaNet.head(...)``
runs only the trainable part from backbone features, so Stage I training can run from
cached features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .backbone import DinoBackbone
from .config import SigmaConfig
from .decoder import MaskDecoder
from .difference import MultiScaleDifference
from .fusion import BidirectionalRefinement, Consensus, InstructionEvidence, uniform_prior
from .layers import trunc_normal_init
from .refinement import DifferenceRefinement


@dataclass
class SigmaOutput:
    """Everything one forward produces; maps are on the token grid unless said."""

    #: ``(B, 1, H, W)`` mask logits at the input size.
    logits: torch.Tensor
    #: ``(B, L, h, w)`` cosine distance 1 − <f̂o, f̂e> per backbone level.
    difference_maps: torch.Tensor
    #: L refined difference embeddings ``(B, d, h, w)`` after the DRBs (Stage II's
    #: edit-noise disentanglement works on these).
    refined_levels: list[torch.Tensor]
    #: ``(B, d, h, w)`` visual evidence after cross-modal refinement (``V_K``; ``V_0``
    #: when the instruction branch is off).
    visual_evidence: torch.Tensor
    #: ``(B, d, h, w)`` consensus C.
    consensus: torch.Tensor
    #: ``(B, 1, h, w)`` the prior P area-pooled to the grid; None with the branch off.
    instruction_prior: torch.Tensor | None
    #: ``(B, d, h, w)`` refined instruction evidence ``G_K``; None with the branch off.
    instruction_evidence: torch.Tensor | None

    @property
    def probability(self) -> torch.Tensor:
        return torch.sigmoid(self.logits.float())


class SigmaHead(nn.Module):
    """The trainable part. Its state dict is what a checkpoint stores."""

    def __init__(self, config: SigmaConfig, backbone_dim: int):
        super().__init__()
        head = config.head
        levels = config.backbone.num_levels
        self.config = config
        self.difference = MultiScaleDifference(
            levels, backbone_dim, head.embed_dim, head.difference_features, head.keep_raw_features
        )
        self.refinement = DifferenceRefinement(head, levels)
        if head.use_instruction:
            self.instruction = InstructionEvidence(head.embed_dim, head.instruction_kernel)
            self.cross_modal = BidirectionalRefinement(head)
        self.consensus = Consensus(head.embed_dim, head.use_instruction)
        self.decoder = MaskDecoder(levels, head.embed_dim, head.fpn_dim, head.decoder_dim)
        trunc_normal_init(self)

    def forward(
        self,
        features_original: list[torch.Tensor],
        features_edited: list[torch.Tensor],
        prior: torch.Tensor | None = None,
        output_size: tuple[int, int] | None = None,
    ) -> SigmaOutput:
        head = self.config.head
        embedded, difference_maps = self.difference(features_original, features_edited)
        refined, visual = self.refinement(embedded)
        batch, _, height, width = visual.shape
        pooled_prior = instruction = None
        if head.use_instruction:
            if prior is None:
                prior = uniform_prior(
                    batch,
                    height,
                    width,
                    head.prior_epsilon,
                    device=visual.device,
                    dtype=visual.dtype,
                )
            elif prior.shape[0] != batch:
                raise ValueError(f"prior batch {prior.shape[0]} != feature batch {batch}")
            instruction, pooled_prior = self.instruction(prior.to(visual.dtype), (height, width))
            visual, instruction = self.cross_modal(visual, instruction)
        consensus = self.consensus(visual, instruction)
        logits = self.decoder(refined, consensus, output_size or self.config.backbone.image_size)
        return SigmaOutput(
            logits=logits,
            difference_maps=difference_maps,
            refined_levels=refined,
            visual_evidence=visual,
            consensus=consensus,
            instruction_prior=pooled_prior,
            instruction_evidence=instruction,
        )


class SigmaNet(nn.Module):
    """Backbone + head. Images are ``(B, 3, H, W)`` floats in [0, 1] at
    ``config.backbone.image_size``; the prior is ``(B, 1, h, w)`` in [0, 1] at any size
    (area-pooled to the token grid) or None for the uniform ε map."""

    def __init__(self, config: SigmaConfig, backbone: DinoBackbone):
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.sigma_head = SigmaHead(config, backbone.hidden_size)

    @classmethod
    def from_config(cls, config: SigmaConfig, *, local_files_only: bool = False) -> SigmaNet:
        """A fresh (untrained) head on the configured pretrained backbone."""
        return cls(
            config, DinoBackbone.from_pretrained(config.backbone, local_files_only=local_files_only)
        )

    def train(self, mode: bool = True) -> SigmaNet:
        super().train(mode)
        self.backbone.train(False)  # frozen: always eval
        return self

    def features(
        self,
        original: torch.Tensor,
        edited: torch.Tensor,
        backbone: DinoBackbone | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Backbone features of both images from one forward over ``[original; edited]``.
        ``backbone``: run this one instead of ``self.backbone`` (the same weights in
        another dtype, :func:`~sigma_iml.models.backbone.backbone_in_dtype`)."""
        if original.shape != edited.shape:
            raise ValueError(
                f"original {tuple(original.shape)} and edited {tuple(edited.shape)} differ"
            )
        batch = original.shape[0]
        maps = (backbone if backbone is not None else self.backbone)(
            torch.cat([original, edited], dim=0)
        )
        return [m[:batch] for m in maps], [m[batch:] for m in maps]

    @property
    def head(self) -> SigmaHead:
        """The trainable part alone: ``net.head(features_original, features_edited, prior,
        output_size)`` runs it on (possibly cached) backbone features."""
        return self.sigma_head

    def forward(
        self, original: torch.Tensor, edited: torch.Tensor, prior: torch.Tensor | None = None
    ) -> SigmaOutput:
        features_original, features_edited = self.features(original, edited)
        return self.head(features_original, features_edited, prior, tuple(original.shape[-2:]))
