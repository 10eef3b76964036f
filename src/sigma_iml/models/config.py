"""Typed, JSON-serialisable configuration of the SIGMA network.

Each default says where it comes from: "paper" (the SIGMA paper, §3.2 and §4.1),
"our reading" (the paper's value or formula was lost in extraction, or the paper does
not say; see ``shared/DESIGN.md``) or "ours" (an engineering choice with no bearing on
the method, e.g. decoder widths chosen for speed).

Switches for the paper's ablation rows (Table 3):

- baseline (single-level differencing): ``BackboneConfig(layers=(11,))``
- 0 / 2 / 4 / 8 difference refinement blocks: ``HeadConfig(num_drb=...)``
- with / without the instruction-grounding branch: ``HeadConfig(use_instruction=...)``
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: The difference signals of the multi-scale difference block (MSDB), Eq. 3.
DIFFERENCE_FEATURES = ("abs", "product", "cosine")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneConfig:
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
    #: ``(height, width)`` the pair is resized to; multiples of the patch size. Paper: 518.
    image_size: tuple[int, int] = (518, 518)
    #: Input normalisation. DINOv2's own preprocessing: ImageNet mean and std.
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: transformers attention kernel. Ours: "sdpa" is twice as fast as "eager" on CPU.
    attn_implementation: str = "sdpa"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        object.__setattr__(self, "image_size", _pair_of_ints(self.image_size, "image_size"))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if not self.layers:
            raise ConfigError("backbone.layers: at least one layer is needed")
        if any(i < 0 for i in self.layers):
            raise ConfigError(f"backbone.layers: block indices count from 0, got {self.layers}")
        if list(self.layers) != sorted(set(self.layers)):
            raise ConfigError(f"backbone.layers must be strictly increasing, got {self.layers}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("backbone.mean/std: three values each, std positive")

    @property
    def num_levels(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class HeadConfig:
    """The trainable part: differencing, refinement, cross-modal fusion, decoder."""

    #: Width ``d`` of the difference embeddings. Our reading (paper's value lost).
    embed_dim: int = 256
    #: Attention heads of every attention layer of the head. Our reading (not in the
    #: paper): 4 heads of width 64, DINOv2's own head width; CPU SDPA runs ~1.5x faster
    #: at head width 64 than at 32.
    num_heads: int = 4
    #: Difference signals of Eq. 3, any subset of :data:`DIFFERENCE_FEATURES`. Our
    #: reading of "magnitude and directional dissimilarity": |f̂o − f̂e|, f̂o ⊙ f̂e and
    #: 1 − <f̂o, f̂e>.
    difference_features: tuple[str, ...] = DIFFERENCE_FEATURES
    #: Concatenate the raw features f_o, f_e with the difference signals (Eq. 4). Paper.
    keep_raw_features: bool = True
    #: Number of difference refinement blocks. Paper: 2 (Table 3 also has 0, 4, 8).
    num_drb: int = 2
    #: The DRB's cross-level attention (queries at one level, keys/values from all
    #: levels). Paper.
    drb_cross_level: bool = True
    #: Side of the average pooling of the keys/values of the cross-level attention (1:
    #: every token of every level, as DESIGN.md reads the paper). Ours, for speed: at 2
    #: the 3 x 37 x 37 keys become 3 x 19 x 19 and the head's share of a pair's CPU time
    #: drops to the issue's target (benchmarks/README.md); queries stay at full density.
    drb_cross_level_pool: int = 2
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
    bcmr_steps: int = 2
    #: ε of the uniform prior used when no instruction prior is given, A = ε·1. Our
    #: reading: the paper's value was lost.
    prior_epsilon: float = 0.01
    #: Kernel size of G0 = ReLU(Conv(P)). Our reading ("a convolution").
    instruction_kernel: int = 3
    #: FPN width on the token grid. Ours.
    fpn_dim: int = 64
    #: Width of the full-resolution fusion and terminal blocks. Ours: small, so the
    #: decoder costs well under the backbone.
    decoder_dim: int = 32
    #: Dropout in attention outputs and FFNs. Ours.
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "difference_features", tuple(self.difference_features))
        unknown = set(self.difference_features) - set(DIFFERENCE_FEATURES)
        if unknown:
            raise ConfigError(
                f"head.difference_features: unknown {sorted(unknown)}; choose from {DIFFERENCE_FEATURES}"
            )
        if not self.difference_features and not self.keep_raw_features:
            raise ConfigError(
                "head: the difference block needs raw features or a difference signal"
            )
        for name in ("embed_dim", "num_heads", "fpn_dim", "decoder_dim", "instruction_kernel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"head.{name} must be positive")
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"head.embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        if self.positional_encoding and self.embed_dim % 4:
            raise ConfigError("head.embed_dim must be a multiple of 4 for 2-D position codes")
        if self.instruction_kernel % 2 == 0:
            raise ConfigError("head.instruction_kernel must be odd (same-size convolution)")
        if self.drb_cross_level_pool < 1:
            raise ConfigError("head.drb_cross_level_pool must be at least 1")
        if self.num_drb < 0 or self.bcmr_steps < 0:
            raise ConfigError("head.num_drb and head.bcmr_steps cannot be negative")
        if not 0.0 <= self.prior_epsilon <= 1.0:
            raise ConfigError("head.prior_epsilon must lie in [0, 1]")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("head.dropout must lie in [0, 1)")


@dataclass(frozen=True)
class SigmaConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SigmaConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"SIGMA config must be a JSON object, got {type(data).__name__}")
        _reject_unknown(data, {"backbone", "head"}, "config")
        return cls(
            backbone=_build(BackboneConfig, data.get("backbone", {}), "backbone"),
            head=_build(HeadConfig, data.get("head", {}), "head"),
        )

    @classmethod
    def from_json(cls, text: str) -> SigmaConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"SIGMA config is not valid JSON: {err}") from err
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> SigmaConfig:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def replace(
        self, *, backbone: dict[str, Any] | None = None, head: dict[str, Any] | None = None
    ) -> SigmaConfig:
        """A copy with some backbone and head fields changed (for ablation variants)."""
        return SigmaConfig(
            backbone=dataclasses.replace(self.backbone, **(backbone or {})),
            head=dataclasses.replace(self.head, **(head or {})),
        )


def _pair_of_ints(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    if len(values) != 2 or min(values) < 1:
        raise ConfigError(f"{name}: expected (height, width) of positive ints, got {value!r}")
    return values  # type: ignore[return-value]


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def _reject_unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")


def _build(kind: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config.{where} must be a JSON object")
    _reject_unknown(data, {f.name for f in dataclasses.fields(kind)}, f"config.{where}")
    try:
        return kind(**data)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"config.{where}: {err}") from err
