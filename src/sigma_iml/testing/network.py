"""Randomly initialised DINOv2 backbones and SIGMA checkpoints, written as the folders the
package loads, and the seeded builder every writer of :mod:`sigma_iml.testing` shares.

Their outputs mean nothing; their structure is the real one. The tiny DINOv2 keeps the
12 blocks of ViT-B (so the paper's layers 2, 5, 11 exist) at a size that runs in
milliseconds on a CPU; ``size="paper"`` is DINOv2-Base (``Dinov2Config`` defaults, ViT-B/14,
``image_size`` 518 as the hub config), for ``benchmarks/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch

from ..data.io import atomic_write_text
from ..instruction.config import InstructionConfig
from ..models.config import BackboneConfig, HeadConfig, SigmaConfig

#: ``tiny``: toy widths for tests and offline runs; ``paper``: the sizes of the paper's
#: models (for timing them).
ModelSize = Literal["tiny", "paper"]

#: The widths every tiny transformer encoder here shares (DINOv2, Qwen2, GroundingDINO's
#: BERT): big enough for multi-head attention, small enough to run in milliseconds on a
#: CPU. Each model adds its own depth and sizes.
TINY_TRANSFORMER = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4
)

#: 12 blocks like ViT-B, so that the paper's layers 2, 5 and 11 exist.
TINY_DINOV2 = {**TINY_TRANSFORMER, "num_hidden_layers": 12, "patch_size": 14, "image_size": 112}

#: The instruction models a pipeline folder's SIGMA checkpoint runs with, as
#: ``instruction.json`` names them (relative to the checkpoint folder).
PIPELINE_INSTRUCTION = {
    "parser": "llm",
    "parser_model": "../qwen2",
    "detector": "../grounding-dino",
    "segmenter": "../sam2",
    "local_files_only": True,
}


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch seeded by ``seed`` inside the block, the caller's global RNG state restored
    after it (CPU generator; models are built on the CPU)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def save_random(
    model_class: Any,
    config: Any,
    directory: str | Path,
    *,
    seed: int = 0,
    prepare: Callable[[Any], Any] | None = None,
) -> Path:
    """Build ``model_class(config)`` with torch seeded by ``seed`` (the caller's global
    RNG state is left as it was), pass it through ``prepare`` if given, and save it to
    ``directory`` as safetensors."""
    directory = Path(directory)
    with seeded(seed):
        model = model_class(config)
    if prepare is not None:
        model = prepare(model)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def dinov2_config(size: ModelSize = "tiny", **overrides: Any):
    from transformers import Dinov2Config

    sizes = {"image_size": 518} if size == "paper" else TINY_DINOV2
    return Dinov2Config(**{**sizes, **overrides})


def write_dinov2(
    directory: str | Path, *, seed: int = 0, size: ModelSize = "tiny", **overrides: Any
) -> Path:
    """Save a randomly initialised ``Dinov2Model`` to ``directory``; ``overrides`` are
    ``Dinov2Config`` values."""
    from transformers import Dinov2Model

    return save_random(Dinov2Model, dinov2_config(size, **overrides), directory, seed=seed)


def tiny_sigma_config(backbone: str, *, image_size: int = 112, **head_overrides) -> SigmaConfig:
    """The paper's structure at toy widths, on a tiny backbone folder."""
    head = dict(embed_dim=32, num_heads=4, fpn_dim=16, decoder_dim=8)
    head.update(head_overrides)
    return SigmaConfig(
        backbone=BackboneConfig(name_or_path=str(backbone), image_size=(image_size, image_size)),
        head=HeadConfig(**head),
    )


def write_sigma_checkpoint(
    directory: str | Path, config: SigmaConfig, backbone: str | Path, *, seed: int = 0
) -> Path:
    """An untrained SIGMA checkpoint of ``config`` in ``directory``; ``backbone`` is the
    DINOv2 folder to build it on (``config`` may name it relative to ``directory``)."""
    from ..models.backbone import DinoBackbone
    from ..models.checkpoint import save_checkpoint
    from ..models.sigma import SigmaHead

    dinov2 = DinoBackbone.from_pretrained(
        config.backbone, local_files_only=True, name_or_path=str(backbone)
    )
    with seeded(seed):
        head = SigmaHead(config, dinov2.hidden_size)
    return save_checkpoint(head, config, directory)


def write_tiny_weights(directory: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """``DIR/dinov2`` (tiny DINOv2) and ``DIR/sigma`` (an untrained SIGMA checkpoint on it,
    naming the backbone relative to itself, so the folder can be moved)."""
    directory = Path(directory)
    dinov2 = write_dinov2(directory / "dinov2", seed=seed)
    config = tiny_sigma_config("../dinov2")
    sigma = write_sigma_checkpoint(directory / "sigma", config, dinov2, seed=seed)
    return {"dinov2": dinov2, "sigma": sigma}


def write_pipeline_instruction(checkpoint: str | Path) -> Path:
    """``instruction.json`` in ``checkpoint`` naming the instruction models beside it
    (``../qwen2``, ``../grounding-dino``, ``../sam2``), as a pipeline folder has them."""
    from ..models.checkpoint import INSTRUCTION_SETTINGS

    path = Path(checkpoint) / INSTRUCTION_SETTINGS
    settings = InstructionConfig.from_dict(PIPELINE_INSTRUCTION).given()
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
    return path
