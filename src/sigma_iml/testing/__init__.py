"""Randomly initialised models for tests, ``sigma-iml dev tiny-weights`` and
``benchmarks/``: the real classes (DINOv2, the SIGMA head, Qwen2, GroundingDINO, SAM 2,
the Stage II autoencoders) built from configs, seeded, and saved as the folders the
package loads. Tiny by default (a CPU runs them in milliseconds; their outputs mean
nothing), the paper's sizes with ``size="paper"`` for timing.

Modules: ``network`` (DINOv2, SIGMA checkpoints, the shared seeded builder), ``inpainting``
(a diffusers inpainting pipeline for ``make-pairs --inpaint``),
``instruction_models`` (Qwen2 and its tokenizer, GroundingDINO, SAM 2) and
``autoencoders`` (VAE, TAESD).
"""

from __future__ import annotations

from pathlib import Path

from .autoencoders import (
    TINY_AUTOENCODER_KL,
    TINY_AUTOENCODER_TINY,
    write_tiny_autoencoders,
    write_tiny_taesd,
    write_tiny_vae,
)
from .instruction_models import (
    BERT_WORDS,
    QWEN25_05B,
    QWEN_CHAT_TEMPLATE,
    QWEN_SPECIAL_TOKENS,
    tiny_qwen2_tokenizer,
    write_grounding_dino,
    write_qwen2,
    write_sam2,
    write_tiny_instruction_models,
)
from .network import (
    PIPELINE_INSTRUCTION,
    TINY_DINOV2,
    ModelSize,
    dinov2_config,
    save_random,
    tiny_sigma_config,
    write_dinov2,
    write_pipeline_instruction,
    write_sigma_checkpoint,
    write_tiny_weights,
)


def write_tiny_pipeline(directory: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Everything the pipeline needs offline: the tiny DINOv2 and SIGMA checkpoint of
    :func:`write_tiny_weights`, the tiny instruction models (Qwen2, GroundingDINO, SAM 2),
    ``DIR/sigma/instruction.json`` pointing at them, and the tiny Stage II autoencoders
    (``DIR/vae``, ``DIR/taesd``)."""
    directory = Path(directory)
    written = write_tiny_weights(directory, seed=seed)
    written.update(write_tiny_instruction_models(directory, seed=seed))
    write_pipeline_instruction(written["sigma"])
    written.update(write_tiny_autoencoders(directory, seed=seed))
    return written


__all__ = [
    "BERT_WORDS",
    "PIPELINE_INSTRUCTION",
    "QWEN25_05B",
    "QWEN_CHAT_TEMPLATE",
    "QWEN_SPECIAL_TOKENS",
    "TINY_AUTOENCODER_KL",
    "TINY_AUTOENCODER_TINY",
    "TINY_DINOV2",
    "ModelSize",
    "dinov2_config",
    "save_random",
    "tiny_qwen2_tokenizer",
    "tiny_sigma_config",
    "write_dinov2",
    "write_grounding_dino",
    "write_pipeline_instruction",
    "write_qwen2",
    "write_sam2",
    "write_sigma_checkpoint",
    "write_tiny_autoencoders",
    "write_tiny_instruction_models",
    "write_tiny_pipeline",
    "write_tiny_taesd",
    "write_tiny_vae",
    "write_tiny_weights",
]
