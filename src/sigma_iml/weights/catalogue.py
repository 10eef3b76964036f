"""Every hub model the pipeline loads, with what it is for (docs/gpu.md).

Revisions are ``main`` until a commit hash is recorded here: no hash was available offline
when this catalogue was written, so each entry says ``pinned=False`` and ``weights list``
shows it as unpinned rather than inventing a hash. Sizes are the safetensors files the
download keeps (approximate, from the parameter counts and dtypes of the published files).
"""

from __future__ import annotations

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


def _sub(folder: str) -> tuple[str, ...]:
    return tuple(f"{folder}/{pattern}" for pattern in ("*.safetensors", *_CONFIG_PATTERNS))


CATALOGUE: tuple[HubModel, ...] = (
    HubModel(
        name="dinov2-base",
        hub_id="facebook/dinov2-base",
        size_mb=346,
        licence="Apache-2.0",
        purpose="SIGMA backbone: frozen features of both images (paper: DINOv2-B/14)",
        setting="model.backbone.name_or_path",
    ),
    HubModel(
        name="qwen2.5-0.5b-instruct",
        hub_id="Qwen/Qwen2.5-0.5B-Instruct",
        size_mb=988,
        licence="Apache-2.0",
        purpose="instruction parser (--parse llm): instruction -> edit tuple",
        setting="instruction.parser_model",
    ),
    HubModel(
        name="grounding-dino-base",
        hub_id="IDEA-Research/grounding-dino-base",
        size_mb=933,
        licence="Apache-2.0",
        purpose="grounding: boxes of the instruction's concepts in both images",
        setting="instruction.detector",
    ),
    HubModel(
        name="sam2.1-hiera-small",
        hub_id="facebook/sam2.1-hiera-small",
        size_mb=184,
        licence="Apache-2.0",
        purpose="grounding: masks of the detected boxes (SAM 2.1)",
        setting="instruction.segmenter",
    ),
    HubModel(
        name="sd15-vae",
        hub_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
        size_mb=335,
        licence="CreativeML-OpenRAIL-M",
        purpose="Stage II noise-calibration partner Dec(Enc(I_e)) (paper: SD 1.5 VAE)",
        setting="stage2.partner.name_or_path (kind vae, subfolder vae)",
        allow_patterns=_sub("vae"),
    ),
    HubModel(
        name="taesd",
        hub_id="madebyollin/taesd",
        size_mb=10,
        licence="MIT",
        purpose="Stage II partner, fast alternative to the VAE (stage2.partner.kind taesd)",
        setting="stage2.partner.name_or_path (kind taesd, subfolder '')",
    ),
    HubModel(
        name="sd15-inpainting",
        hub_id="stable-diffusion-v1-5/stable-diffusion-inpainting",
        size_mb=4270,
        licence="CreativeML-OpenRAIL-M",
        purpose="make-pairs --inpaint: Stage I inpainting pairs from real images",
        setting="make-pairs --inpaint",
        # The pipeline's components; the repository's single-file .ckpt and the
        # safety checker's duplicates are left out.
        allow_patterns=(
            "model_index.json",
            *_sub("unet"),
            *_sub("vae"),
            *_sub("text_encoder"),
            *_sub("tokenizer"),
            *_sub("scheduler"),
            *_sub("feature_extractor"),
        ),
    ),
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
