"""Training configuration (Stage I and Stage II), read from YAML.

Every default says where it comes from: "paper" (SIGMA §3.3 and §4.1), "lost" (the
paper names the setting but its value was lost in the text extraction, so the value is
ours), "our reading" (a formula the paper does not spell out, see ``docs/design.md``)
or "ours" (an engineering choice). ``configs/train/*.yaml`` spell the same out.

Every class is a :class:`~sigma_iml.config.ConfigModel` (frozen, validated). A YAML file
holds any subset of :class:`TrainConfig`'s fields; unknown keys are errors naming the
file and the field (a typo must not silently fall back to a default)::

    model: {backbone: {...}, head: {...}}   # a SigmaConfig; ignored when --init is given
    epochs: 10
    batch_size: 8
    optimizer: {lr: 1.0e-4, betas: [0.9, 0.999], weight_decay: 0.05, ...}
    augment: {hflip_probability: 0.5, crop_scale: [0.75, 1.0]}
    loss: {bce_weight: 1.0, dice_weight: 1.0}
    stage2: {lambda_cal: 0.5, lambda_st: 0.5, lambda_dis: 0.1, partner: {...}, ...}
    priors: instruction                     # instruction | masks | none
    instruction: {parser: rules, detector: ..., segmenter: ...}   # the branch's settings
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from ..config import ConfigModel, describe_validation_error
from ..device import Precision
from ..errors import ConfigError
from ..models.config import SigmaConfig


def _sigma_config(value: Any) -> SigmaConfig:
    """A :class:`SigmaConfig` as it is, or built from its mapping (its own validation;
    a ConfigError is a ValueError, so pydantic reports it under the ``model`` field)."""
    if isinstance(value, SigmaConfig):
        return value
    return SigmaConfig.from_dict(value)


class _TrainingSettings(ConfigModel):
    """A :class:`ConfigModel` whose constructor raises a ConfigError too (as the
    dataclasses these settings used to be did): ``TrainConfig(batch_size=0)`` from
    Python fails like a YAML file with that value."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, type(self).__name__)) from None

    # Marks this constructor as pydantic's own, so that nested settings read from a
    # mapping are validated in place (errors keep their dotted field path) rather than
    # through this constructor.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


#: The network's config inside a training config: validated and written by SigmaConfig.
ModelField = Annotated[
    SigmaConfig,
    PlainValidator(_sigma_config),
    PlainSerializer(lambda config: config.to_dict()),
]


class OptimizerConfig(_TrainingSettings):
    """AdamW with a linear warm-up, then cosine annealing (paper: AdamW, cosine)."""

    #: Initial (peak) learning rate. Lost: the paper gives one, its value did not survive;
    #: 1e-4 is ours, the usual AdamW rate for a transformer head on frozen features.
    lr: float = 1e-4
    #: AdamW betas. Lost: the paper sets both; ours are AdamW's defaults.
    betas: tuple[float, float] = (0.9, 0.999)
    #: AdamW decoupled weight decay. Lost: the paper sets it; 0.05 is ours.
    weight_decay: NonNegativeFloat = 0.05
    #: Share of all optimizer steps spent warming the rate up linearly from 0. Ours (the
    #: issue asks for a warm-up; the paper says only "cosine annealing").
    warmup_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    #: The cosine ends at ``lr * min_lr_ratio``. Ours.
    min_lr_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    #: Gradient norm clip (0: off). Ours: keeps the attention head stable early on.
    grad_clip: NonNegativeFloat = 1.0

    @model_validator(mode="after")
    def _check(self) -> OptimizerConfig:
        # NaN compares False with everything and inf "trains" to a NaN best checkpoint.
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"optimizer.lr must be a finite positive number, got {self.lr}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError("optimizer.betas: two values in [0, 1)")
        return self


class AugmentConfig(_TrainingSettings):
    """Synchronized augmentation: one draw applied to both images, the mask (and the
    Stage II noise partner). Paper: random horizontal flip and random crop."""

    #: Probability of a horizontal flip. Ours (the paper gives no rate): the usual 0.5.
    hflip_probability: float = 0.5
    #: Each side of the crop window is this fraction of the image side, drawn uniformly
    #: (independently for height and width); the window is then resized to the model's
    #: input size. Ours (the paper gives no range). ``[1, 1]`` turns cropping off.
    crop_scale: tuple[float, float] = (0.75, 1.0)

    @model_validator(mode="after")
    def _check(self) -> AugmentConfig:
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError("augment.crop_scale: [low, high] with 0 < low <= high <= 1")
        if not 0.0 <= self.hflip_probability <= 1.0:
            raise ValueError("augment.hflip_probability must lie in [0, 1]")
        return self

    @property
    def crops(self) -> bool:
        return self.crop_scale != (1.0, 1.0)


class LossConfig(_TrainingSettings):
    """``L_seg = bce_weight * BCE + dice_weight * Dice`` (our reading of the paper's L_seg)."""

    bce_weight: float = 1.0
    dice_weight: float = 1.0

    @model_validator(mode="after")
    def _check(self) -> LossConfig:
        if self.bce_weight < 0 or self.dice_weight < 0 or self.bce_weight + self.dice_weight == 0:
            raise ValueError("loss: weights are >= 0 and not both 0")
        return self


#: How the noise partner is made (:attr:`PartnerConfig.kind`).
PartnerKind = Literal["vae", "taesd", "resynthesis"]
PARTNER_KINDS: tuple[str, ...] = ("vae", "taesd", "resynthesis")

#: Where training's instruction prior comes from (:attr:`TrainConfig.priors`).
PriorSource = Literal["instruction", "masks", "none"]


class PartnerConfig(_TrainingSettings):
    """How Stage II makes the noise-calibration partner ``Dec(Enc(I_e))`` of an edited
    image (paper: an SD 1.5 or SDXL VAE round trip)."""

    #: ``vae`` (diffusers ``AutoencoderKL``; paper), ``taesd`` (diffusers
    #: ``AutoencoderTiny``, ~10x faster, measured in docs/training.md; ours) or
    #: ``resynthesis`` (``data.synth.resynthesis_noise``: no model, for offline tests).
    kind: PartnerKind = "vae"
    #: Hub id or folder. Paper: the SD 1.5 VAE. SDXL's: ``stabilityai/sdxl-vae`` (run it
    #: in float32, or use ``madebyollin/sdxl-vae-fp16-fix`` for half precision); TAESD:
    #: ``madebyollin/taesd`` (SD 1.5 latents) or ``madebyollin/taesdxl``.
    name_or_path: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    #: Subfolder inside ``name_or_path`` ("vae" for a full pipeline repository; "" for a
    #: repository that is the VAE itself).
    subfolder: str = "vae"
    #: Decode a sample of the latent distribution instead of its mean. Ours: the mean
    #: keeps the partner deterministic, so the cache does not depend on a seed.
    sample_latent: bool = False
    #: Round trips per forward.
    batch_size: int = 4
    #: Noise level of the ``resynthesis`` kind.
    resynthesis_level: float = 1.0

    @model_validator(mode="after")
    def _check(self) -> PartnerConfig:
        if self.batch_size < 1:
            raise ValueError("stage2.partner.batch_size must be at least 1")
        return self


#: Paper: Stage II fine-tunes for 5 epochs (Stage I: 10, :attr:`TrainConfig.epochs`).
STAGE2_EPOCHS = 5


class Stage2Config(_TrainingSettings):
    """Stage II's extra terms (paper §3.3): ``L = L_seg + λ_cal L_cal + λ_st L_st + λ_dis L_dis``."""

    #: Weights of the three self-supervised terms. Lost / ours (docs/design.md): L_seg,
    #: on labelled data, keeps the dominant weight 1.
    lambda_cal: float = 0.5
    lambda_st: float = 0.5
    lambda_dis: float = 0.1
    #: EMA teacher momentum. Ours, docs/design.md's example (the paper's value was lost).
    ema_momentum: float = 0.999
    #: A teacher pixel supervises the student when its probability is above this or below
    #: one minus this. Lost: ours.
    confidence_threshold: float = 0.9
    #: Only masks whose QES (Web-IML: ``#(p > 15/16) / #(p > 1/16)``) reaches this
    #: supervise the student; None: every mask. Ours (off by default).
    min_qes: float | None = None
    #: Edit-noise disentanglement, our reading: penalise ``max(0, cos - margin)`` between
    #: the real pair's and the noise pair's DRB difference vectors on the teacher's
    #: predicted-edit support (teacher probability > 0.5), averaged over levels.
    disentangle_margin: float = 0.0
    partner: PartnerConfig = PartnerConfig()

    @model_validator(mode="after")
    def _check(self) -> Stage2Config:
        for name in ("lambda_cal", "lambda_st", "lambda_dis"):
            if getattr(self, name) < 0:
                raise ValueError(f"stage2.{name} cannot be negative")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ValueError("stage2.ema_momentum must lie in [0, 1)")
        if not 0.5 <= self.confidence_threshold < 1.0:
            raise ValueError("stage2.confidence_threshold must lie in [0.5, 1)")
        if self.min_qes is not None and not 0.0 <= self.min_qes <= 1.0:
            raise ValueError("stage2.min_qes must lie in [0, 1]")
        if not -1.0 <= self.disentangle_margin < 1.0:
            raise ValueError("stage2.disentangle_margin must lie in [-1, 1)")
        return self


class TrainConfig(_TrainingSettings):
    """One training run (either stage)."""

    #: The network to train from scratch (its head; the backbone is frozen). None takes
    #: the default SigmaConfig (paper: DINOv2-B, 518x518). Ignored when a run starts
    #: from ``--init`` (the checkpoint's config is used).
    model: ModelField | None = None
    #: Passes over the training set. Paper: 10 for Stage I (``configs/train/stage2.yaml``
    #: sets the paper's 5 for Stage II, whose epoch is a pass over the unlabelled set).
    epochs: int = 10
    #: Pairs per optimizer step. Paper: 8.
    batch_size: int = 8
    #: Pairs per forward; ``batch_size`` must be a multiple of it. Smaller than the batch
    #: size means gradient accumulation (for when memory is short). None: the batch size.
    micro_batch_size: int | None = None
    optimizer: OptimizerConfig = OptimizerConfig()
    augment: AugmentConfig = AugmentConfig()
    loss: LossConfig = LossConfig()
    stage2: Stage2Config = Stage2Config()
    #: Stop after this many optimizer steps (the schedule is laid out over them). None:
    #: ``epochs`` full passes.
    max_steps: int | None = None
    #: Seed of initialisation, data order and augmentation.
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ...
    #: (:func:`sigma_iml.device.resolve_device`).
    device: str = "auto"
    #: ``auto``: bf16 autocast where bf16 matrix products are fast (CUDA, CPUs with AMX,
    #: detected at run time), float32 elsewhere; ``bf16`` or ``fp32`` force one
    #: (:func:`sigma_iml.device.autocast_dtype`).
    precision: Precision = "auto"
    #: DataLoader worker processes decoding images (0: in the main process).
    num_workers: int = 0
    #: Write ``DIR/last`` (weights, optimizer, progress) every this many optimizer steps,
    #: and at each epoch's end; an interrupted run resumes from it.
    checkpoint_every: int = 200
    #: Average the logged losses over this many steps per history entry.
    log_every: int = 10
    #: Storage type of cached backbone features (``--cache-features``): float16 halves the
    #: disk and read volume; float32 is exact.
    cache_dtype: Literal["float16", "float32"] = "float16"
    #: Where the head's prior ``P`` comes from in training (docs/design.md, "Training
    #: priors"). ``instruction`` (paper: SIGMA trains "+IGB"): the branch inference runs
    #: (parse → ground → ACSF) with the ``instruction`` settings below, else those of the
    #: ``--init`` checkpoint, else the defaults (the paper's models); ``masks``: ACSF over
    #: the concept masks the dataset provides (``original_concept_mask`` /
    #: ``edited_concept_mask``, which ``make-pairs`` writes; a pair without them gets
    #: the ε map), the informative prior a CPU run can have without grounding models;
    #: ``none``: the uniform ε prior everywhere. Priors are computed once per pair and
    #: cached beside the feature cache (``CACHE/priors``, else ``OUT/priors``).
    priors: PriorSource = "instruction"
    #: Instruction-branch settings (an ``InstructionConfig`` mapping: parser, grounding,
    #: detector, segmenter, ...) for ``priors: instruction``; their checkpoints carry
    #: them. None: the ``--init`` checkpoint's, else the defaults.
    instruction: dict[str, Any] | None = None

    @field_validator("instruction")
    @classmethod
    def _check_instruction(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from ..instruction.branch import InstructionConfig

            InstructionConfig.from_dict(value)  # refuses unknown settings
        return value

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        micro = self.micro_batch_size
        if micro is not None and (micro < 1 or self.batch_size % micro):
            raise ValueError(f"micro_batch_size {micro} must divide batch_size {self.batch_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.num_workers < 0:
            raise ValueError("checkpoint_every, log_every >= 1; num_workers >= 0")
        return self

    @property
    def accumulation_steps(self) -> int:
        return self.batch_size // (self.micro_batch_size or self.batch_size)
