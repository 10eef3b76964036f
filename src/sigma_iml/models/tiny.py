"""Tiny randomly initialised models, written as Hugging Face folders, for tests and for
running the whole pipeline offline (``sigma-iml dev tiny-weights DIR``).

Their outputs mean nothing; their structure is the real one (12 DINOv2 blocks, so the
paper's layers 2, 5, 11 exist), at a size that runs in milliseconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import BackboneConfig, HeadConfig, SigmaConfig

TINY_DINOV2 = dict(
    hidden_size=64,
    num_hidden_layers=12,
    num_attention_heads=4,
    intermediate_size=128,
    patch_size=14,
    image_size=112,
)


def tiny_dinov2_config(**overrides):
    from transformers import Dinov2Config

    return Dinov2Config(**{**TINY_DINOV2, **overrides})


def write_tiny_dinov2(directory: str | Path, *, seed: int = 0, **overrides) -> Path:
    """Save a randomly initialised tiny ``Dinov2Model`` (safetensors) to ``directory``."""
    from transformers import Dinov2Model

    directory = Path(directory)
    # Seeded, yet the caller's global RNG state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(tiny_dinov2_config(**overrides))
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def tiny_sigma_config(backbone: str, *, image_size: int = 112, **head_overrides) -> SigmaConfig:
    """The paper's structure at toy widths, on a tiny backbone folder."""
    head = dict(embed_dim=32, num_heads=4, fpn_dim=16, decoder_dim=8)
    head.update(head_overrides)
    return SigmaConfig(
        backbone=BackboneConfig(name_or_path=str(backbone), image_size=(image_size, image_size)),
        head=HeadConfig(**head),
    )


def write_tiny_weights(directory: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """``DIR/dinov2`` (tiny DINOv2) and ``DIR/sigma`` (an untrained SIGMA checkpoint on it,
    naming the backbone relative to itself, so the folder can be moved)."""
    from .backbone import DinoBackbone
    from .checkpoint import save_checkpoint
    from .sigma import SigmaHead

    directory = Path(directory)
    dinov2 = write_tiny_dinov2(directory / "dinov2", seed=seed)
    config = tiny_sigma_config("../dinov2")
    backbone = DinoBackbone.from_pretrained(
        config.backbone, local_files_only=True, name_or_path=str(dinov2)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = SigmaHead(config, backbone.hidden_size)
    sigma = save_checkpoint(head, config, directory / "sigma")
    return {"dinov2": dinov2, "sigma": sigma}


def write_tiny_pipeline(directory: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Everything the pipeline needs offline: the tiny DINOv2 and SIGMA checkpoint of
    :func:`write_tiny_weights`, the tiny instruction models (Qwen2, GroundingDINO, SAM 2),
    ``DIR/sigma/instruction.json`` pointing at them, and the tiny Stage II autoencoders
    (``DIR/vae``, ``DIR/taesd``)."""
    import json

    from ..instruction.tiny import write_tiny_instruction_models
    from ..training.tiny import write_tiny_autoencoders
    from .method import INSTRUCTION_SETTINGS

    directory = Path(directory)
    written = write_tiny_weights(directory, seed=seed)
    written.update(write_tiny_instruction_models(directory, seed=seed))
    settings = {
        "parser": "llm",
        "parser_model": "../qwen2",
        "detector": "../grounding-dino",
        "segmenter": "../sam2",
        "local_files_only": True,
    }
    (written["sigma"] / INSTRUCTION_SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
    written.update(write_tiny_autoencoders(directory, seed=seed))
    return written
