"""Typed, JSON-serialisable configuration of the SIGMA network.

Each default says where it comes from: "paper" (the SIGMA paper, §3.2 and §4.1),
"our reading" (the paper's value or formula was lost in extraction, or the paper does
not say; see ``docs/design.md``) or "ours" (an engineering choice with no bearing on
the method, e.g. decoder widths chosen for speed).

Switches for the paper's ablation rows (Table 3):

- baseline (single-level differencing): ``BackboneConfig(layers=(11,))``
- 0 / 2 / 4 / 8 difference refinement blocks: ``HeadConfig(num_drb=...)``
- with / without the instruction-grounding branch: ``HeadConfig(use_instruction=...)``
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from ..config import ConfigModel
from ..errors import ConfigError

#: A difference signal of the multi-scale difference block (MSDB), Eq. 3.
DifferenceFeature = Literal["abs", "product", "cosine"]
DIFFERENCE_FEATURES: tuple[DifferenceFeature, ...] = ("abs", "product", "cosine")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneConfig(ConfigModel):
    """Which frozen DINOv2 to load and what to take from it."""

    #: Hub id or local folder of a transformers DINOv2 model. Paper: frozen DINOv2-Base.
    name_or_path: str = "facebook/dinov2-base"
    #: Transformer blocks whose outputs are taken, counted from 0 as DINOv2's
    #: ``get_intermediate_layers`` counts them (block i is transformers'
    #: ``hidden_states[i + 1]``). Paper: layers 2, 5 and 11 of ViT-B. Ablation
    #: "baseline" (single level): ``(11,)``.
    layers: tuple[int, ...] = (2, 5, 11)
    #: Apply the backbone's final LayerNorm to every taken layer, as
    #: ``get_intermediate_layers(norm=True)`` and transformers' ``Dinov2Backbone`` do.
    #: Our reading.
    apply_layernorm: bool = True
    #: ``(height, width)`` the pair is resized to (one int: a square); multiples of the
    #: patch size. Paper: 518.
    image_size: tuple[int, int] = (518, 518)
    #: Input normalisation. DINOv2's own preprocessing: ImageNet mean and std.
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: transformers attention kernel (a name transformers accepts, so not a closed
    #: list here). Ours: "sdpa" is twice as fast as "eager" on CPU.
    attn_implementation: str = "sdpa"

    @field_validator("image_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _check(self) -> BackboneConfig:
        if not self.layers:
            raise ConfigError("backbone.layers: at least one layer is needed")
        if any(i < 0 for i in self.layers):
            raise ConfigError(f"backbone.layers: block indices count from 0, got {self.layers}")
        if list(self.layers) != sorted(set(self.layers)):
            raise ConfigError(f"backbone.layers must be strictly increasing, got {self.layers}")
        if min(self.image_size) < 1:
            raise ConfigError(
                f"backbone.image_size: expected (height, width) of positive ints, "
                f"got {self.image_size}"
            )
        if min(self.std) <= 0:
            raise ConfigError("backbone.std: three positive values")
        return self

    @property
    def num_levels(self) -> int:
        return len(self.layers)


class HeadConfig(ConfigModel):
    """The trainable part: differencing, refinement, cross-modal fusion, decoder."""

    #: Width ``d`` of the difference embeddings. Our reading (paper's value lost).
    embed_dim: PositiveInt = 256
    #: Attention heads of every attention layer of the head. Our reading (not in the
    #: paper): 4 heads of width 64, DINOv2's own head width; CPU SDPA runs ~1.5x faster
    #: at head width 64 than at 32.
    num_heads: PositiveInt = 4
    #: Difference signals of Eq. 3, any subset of :data:`DIFFERENCE_FEATURES`. Our
    #: reading of "magnitude and directional dissimilarity": |f̂o − f̂e|, f̂o ⊙ f̂e and
    #: 1 − <f̂o, f̂e>.
    difference_features: tuple[DifferenceFeature, ...] = DIFFERENCE_FEATURES
    #: Concatenate the raw features f_o, f_e with the difference signals (Eq. 4). Paper.
    keep_raw_features: bool = True
    #: Number of difference refinement blocks. Paper: 2 (Table 3 also has 0, 4, 8).
    num_drb: NonNegativeInt = 2
    #: The DRB's cross-level attention (queries at one level, keys/values from all
    #: levels). Paper.
    drb_cross_level: bool = True
    #: Side of the average pooling of the keys/values of the cross-level attention. Paper:
    #: 1, every token of every level (docs/design.md, step 4). An opt-in speed setting: at
    #: 2 the 3 x 37 x 37 keys become 3 x 19 x 19 (queries stay at full density); measured
    #: cost and effect in benchmarks/README.md.
    drb_cross_level_pool: PositiveInt = 1
    #: FFN hidden width as a multiple of ``embed_dim``. Our reading (the usual 4).
    ffn_ratio: float = 4.0
    #: Add fixed 2-D sine-cosine position codes to attention queries and keys. Our
    #: reading: the instruction evidence is a function of the prior value alone, so
    #: without them cross-attention could not tell where a prior token lies.
    positional_encoding: bool = True
    #: The instruction-grounding branch: instruction evidence G and bidirectional
    #: cross-modal refinement. Paper (Table 3 "+IGB"); off gives the rows without it.
    use_instruction: bool = True
    #: Bidirectional cross-modal refinement iterations K. Paper: 2.
    bcmr_steps: NonNegativeInt = 2
    #: ε of the uniform prior used when no instruction prior is given, A = ε·1. Our
    #: reading: the paper's value was lost.
    prior_epsilon: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    #: Kernel size of G0 = ReLU(Conv(P)). Our reading ("a convolution").
    instruction_kernel: PositiveInt = 3
    #: FPN width on the token grid. Ours.
    fpn_dim: PositiveInt = 64
    #: Width of the full-resolution fusion and terminal blocks. Ours: small, so the
    #: decoder costs well under the backbone.
    decoder_dim: PositiveInt = 32
    #: Dropout in attention outputs and FFNs. Ours.
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    # Ranges of single fields are in their types (PositiveInt, Field(ge=...)): pydantic
    # names the field in the error. What follows relates fields to one another.
    @model_validator(mode="after")
    def _check(self) -> HeadConfig:
        if not self.difference_features and not self.keep_raw_features:
            raise ConfigError(
                "head: the difference block needs raw features or a difference signal"
            )
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"head.embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        if self.positional_encoding and self.embed_dim % 4:
            raise ConfigError("head.embed_dim must be a multiple of 4 for 2-D position codes")
        if self.instruction_kernel % 2 == 0:
            raise ConfigError("head.instruction_kernel must be odd (same-size convolution)")
        return self


class SigmaConfig(ConfigModel):
    """The whole network; a checkpoint's ``config.json`` holds :meth:`to_dict` of it."""

    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SigmaConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"SIGMA config is not valid JSON: {err}") from err
        return cls.from_dict(data, where="config")

    @classmethod
    def load(cls, path: str | Path) -> SigmaConfig:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def replace(self, **changes: Any) -> SigmaConfig:
        """A validated copy with some fields changed; a mapping given for ``backbone`` or
        ``head`` changes only the fields it names (ablation variants:
        ``config.replace(head={"num_drb": 4})``)."""
        data = self.model_dump()
        for key, value in changes.items():
            if key in data and isinstance(value, Mapping):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return type(self).from_dict(data, where="config")
