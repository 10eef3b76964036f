"""Every hub model the pipeline loads, with what it is for (docs/gpu.md).

Each model is pinned to a commit of its Hugging Face repository, so ``weights download``
fetches the same files wherever it runs; the comment above each row says where the commit
was found (the hub itself was not reachable when this catalogue was written, so each
commit is one that public sources pin and whose files they list). ``weights download``
also records the commit it resolved in ``weights.json`` (``--from-manifest`` downloads
exactly that again). Sizes are what the download keeps: every ``*.safetensors`` file the
patterns match plus configs and tokenizers, in decimal megabytes as the hub lists them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field

from ..config import ConfigModel
from ..hub import folder_name, is_hub_id

# The configuration files a transformers / diffusers model needs besides its weights;
# pickled weights (*.bin, *.pt, *.ckpt) are never fetched.
_CONFIG_PATTERNS = (
    "*.json",
    "*.txt",
    "*.model",
    "tokenizer*",
    "merges.txt",
    "vocab*",
)

_COMMIT = re.compile(r"[0-9a-f]{40}")


def is_commit(revision: str) -> bool:
    """Whether ``revision`` is a full git commit hash (not a branch or tag name)."""
    return _COMMIT.fullmatch(revision) is not None


class HubModel(ConfigModel):
    """One hub model: where it comes from and what the pipeline uses it for."""

    #: Short name (``weights download --only NAME``).
    name: str
    #: Hub repository id (``owner/name``); inside a weights folder: ``owner--name``.
    hub_id: str
    #: Git revision downloaded (a commit hash when pinned, else ``main``).
    revision: str = "main"
    pinned: bool = False
    #: Approximate download size in megabytes (safetensors + configs).
    size_mb: float = Field(ge=0)
    licence: str
    purpose: str
    #: The setting that names this model (where a user changes it).
    setting: str
    #: Files fetched (``huggingface_hub`` allow_patterns): safetensors and configs only.
    allow_patterns: tuple[str, ...] = ("*.safetensors", *_CONFIG_PATTERNS)

    @property
    def folder(self) -> str:
        """The folder inside a weights folder (:func:`sigma_iml.hub.folder_name`)."""
        return folder_name(self.hub_id)


def _sub(*folders: str, weights: str = "*.safetensors") -> tuple[str, ...]:
    """The weights (``weights`` names them) and configs of a diffusers pipeline's
    component folders."""
    patterns = (weights, *_CONFIG_PATTERNS)
    return tuple(f"{folder}/{pattern}" for folder in folders for pattern in patterns)


# One row per model: name, hub id, commit, size (MB), licence, setting, purpose, and the
# files fetched (None: every safetensors file and config of the repository).
_ROWS: tuple[tuple[Any, ...], ...] = (
    # f9e44c8 is the head of main on the hub's file listing (model.safetensors 346 MB);
    # the full hash is pinned in public code (MTEB's ModelMeta for dinov2-base, HF cache
    # snapshot paths).
    (
        "dinov2-base",
        "facebook/dinov2-base",
        "f9e44c814b77203eaa57a6bdbbd535f21ede1415",
        346,
        "Apache-2.0",
        "model.backbone.name_or_path",
        "SIGMA backbone: frozen features of both images (paper: DINOv2-B/14)",
        None,
    ),
    # Pinned by public code through snapshot_download(revision=...); model.safetensors
    # 988 MB, tokenizer.json 7.03 MB, vocab.json 2.78 MB, merges.txt 1.67 MB.
    (
        "qwen2.5-0.5b-instruct",
        "Qwen/Qwen2.5-0.5B-Instruct",
        "7ae557604adf67be50417f59c2c2f167def9a775",
        1000,
        "Apache-2.0",
        "instruction.parser_model",
        "instruction parser (--parse llm): instruction -> edit tuple",
        None,
    ),
    # Pinned by public code that also records model.safetensors' sha256 (5548f844...), the
    # LFS hash the hub shows for its 933 MB model.safetensors; tokenizer files ~1 MB.
    (
        "grounding-dino-base",
        "IDEA-Research/grounding-dino-base",
        "12bdfa3120f3e7ec7b434d90674b3396eccf88eb",
        934,
        "Apache-2.0",
        "instruction.detector",
        "grounding: boxes of the instruction's concepts in both images",
        None,
    ),
    # Public code names this commit as the transformers safetensors export (model.safetensors
    # sha256 0a4067b1...) and lists the repository at 368,754,000 bytes, of which the
    # pickled sam2.1_hiera_small.pt (not fetched) is 184,416,285.
    (
        "sam2.1-hiera-small",
        "facebook/sam2.1-hiera-small",
        "ee5bba1d82bb8749febdf90f45e84b687142ba03",
        184,
        "Apache-2.0",
        "instruction.segmenter",
        "grounding: masks of the detected boxes (SAM 2.1)",
        None,
    ),
    # Pinned by public code through snapshot_download(revision=...); vae/ holds
    # diffusion_pytorch_model.safetensors (335 MB) and its fp16 variant (167,335,342 bytes).
    # Only the plain file is fetched: the partner loads it (hub.weight_variants) and casts
    # it to the run's dtype, so the fp16 copy would never be read.
    (
        "sd15-vae",
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
        335,
        "CreativeML-OpenRAIL-M",
        "stage2.partner.name_or_path (kind vae, subfolder vae)",
        "Stage II noise-calibration partner Dec(Enc(I_e)) (paper: SD 1.5 VAE)",
        _sub("vae", weights="diffusion_pytorch_model.safetensors"),
    ),
    # Pinned by public code and resolve URLs; diffusion_pytorch_model.safetensors is
    # 9,793,292 bytes, taesd_encoder/decoder.safetensors 4.9 MB each.
    (
        "taesd",
        "madebyollin/taesd",
        "614f76814bbe30edbe2e627ace1c2234c81a2c0e",
        20,
        "MIT",
        "stage2.partner.name_or_path (kind taesd, subfolder '')",
        "Stage II partner, fast alternative to the VAE (stage2.partner.kind taesd)",
        None,
    ),
    # The repository's only commit ("Initial commit" on the hub's commit page). Its
    # components carry fp16 safetensors only: unet 1.72 GB, text_encoder ~246 MB, vae
    # 167 MB; the single-file .ckpt and the safety checker are left out.
    (
        "sd15-inpainting",
        "stable-diffusion-v1-5/stable-diffusion-inpainting",
        "8a4288a76071f7280aedbdb3253bdb9e9d5d84bb",
        2134,
        "CreativeML-OpenRAIL-M",
        "make-pairs --inpaint",
        "make-pairs --inpaint: Stage I inpainting pairs from real images",
        (
            "model_index.json",
            *_sub("unet", "vae", "text_encoder", "tokenizer", "scheduler", "feature_extractor"),
        ),
    ),
)

CATALOGUE: tuple[HubModel, ...] = tuple(
    HubModel(
        name=name,
        hub_id=hub_id,
        revision=revision,
        pinned=is_commit(revision),
        size_mb=size_mb,
        licence=licence,
        setting=setting,
        purpose=purpose,
        **({} if patterns is None else {"allow_patterns": patterns}),
    )
    for name, hub_id, revision, size_mb, licence, setting, purpose, patterns in _ROWS
)


def find_model(name_or_id: str) -> HubModel | None:
    """The catalogue entry with this short name or hub id, or None."""
    for model in CATALOGUE:
        if name_or_id in (model.name, model.hub_id):
            return model
    return None


def models_for_checkpoint(checkpoint: str | Path) -> list[dict[str, Any]]:
    """The hub models a SIGMA checkpoint names: its backbone, and the parser/grounding
    models of its ``instruction.json`` (defaults when a setting is absent). Each row is
    ``{"setting", "name_or_path", "model"}``, ``model`` the catalogue entry or None (a
    local folder, or a hub model outside the catalogue)."""
    from ..instruction.grounding import DEFAULT_DETECTOR, DEFAULT_SEGMENTER
    from ..instruction.llm import DEFAULT_LLM
    from ..models.checkpoint import instruction_settings, read_checkpoint

    config, _, folder = read_checkpoint(checkpoint)
    rows = [("model.backbone.name_or_path", config.backbone.name_or_path)]
    settings = instruction_settings(Path(checkpoint))
    # ``auto`` uses the LLM when it is available, so it is listed too.
    if settings.get("parser", "auto") in ("llm", "auto"):
        rows.append(("instruction.parser_model", settings.get("parser_model") or DEFAULT_LLM))
    if settings.get("grounding", True):
        rows.append(("instruction.detector", settings.get("detector") or DEFAULT_DETECTOR))
        rows.append(("instruction.segmenter", settings.get("segmenter") or DEFAULT_SEGMENTER))
    return [
        {
            "setting": setting,
            "name_or_path": value,
            "model": find_model(value) if is_hub_id(value) else None,
        }
        for setting, value in rows
    ]
