"""SIGMA checkpoints: the trainable head as safetensors plus a JSON config.

A checkpoint is a folder::

    config.json         {"format": "sigma-iml-head", "format_version": 1, "config": {...}}
    head.safetensors    the head's state dict (the config is also in its metadata)
    instruction.json    optional: the instruction models it runs with (the settings of
                        :class:`~sigma_iml.instruction.config.InstructionConfig` it was given)

The backbone is not stored: ``config.backbone.name_or_path`` names it (a hub id, an
absolute folder, or a folder relative to the checkpoint folder). Loading never unpickles:
pickle files (``.bin``, ``.pt``, ``.ckpt``, ...) can run arbitrary code when loaded, so
anything that is not safetensors is refused with an error saying so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.io import atomic_write_text
from ..errors import ConfigError
from ..instruction.config import PATH_SETTINGS, InstructionConfig
from .config import SigmaConfig

FORMAT = "sigma-iml-head"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "head.safetensors"
#: The file beside a checkpoint naming the instruction models it runs with.
INSTRUCTION_SETTINGS = "instruction.json"
_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".tar", ".zip"}


class CheckpointError(ConfigError):
    """A checkpoint is missing, malformed, or not in the safe format."""


def save_checkpoint(
    head: nn.Module,
    config: SigmaConfig,
    directory: str | Path,
    *,
    instruction: InstructionConfig | Mapping[str, Any] | None = None,
) -> Path:
    """Write ``head``'s weights and ``config`` to ``directory`` (created if needed), and
    ``instruction`` (the instruction-branch settings the model runs with) as
    ``instruction.json`` when given: only the settings given, validated first."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config.to_dict()}
    state = {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}
    save_file(
        state,
        str(directory / WEIGHTS_FILE),
        metadata={"format": FORMAT, "config": config.to_json()},
    )
    (directory / CONFIG_FILE).write_text(
        json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    if instruction is not None:
        if not isinstance(instruction, InstructionConfig):
            instruction = InstructionConfig.from_dict(dict(instruction), "instruction settings")
        atomic_write_text(
            directory / INSTRUCTION_SETTINGS, json.dumps(instruction.given(), indent=2) + "\n"
        )
    return directory


def instruction_settings(checkpoint: str | Path) -> dict[str, Any]:
    """The settings in a checkpoint's ``instruction.json`` (validated, only those it
    names), relative paths made absolute (a value starting with ``.`` is a path relative
    to the checkpoint folder); {} when there is none."""
    checkpoint = Path(checkpoint).expanduser()
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    path = folder / INSTRUCTION_SETTINGS
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: invalid JSON ({err.msg})") from None
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path}: expected a JSON object of instruction settings")
    for key in PATH_SETTINGS:
        value = settings.get(key)
        if isinstance(value, str) and value.startswith("."):
            settings[key] = str((folder / value).resolve())
    return InstructionConfig.from_dict(settings, str(path)).given()


def _refuse_unsafe(path: Path) -> None:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise CheckpointError(
            f"refusing to load {path}: {path.suffix} files are pickles, which can run arbitrary "
            f"code when loaded; SIGMA checkpoints are safetensors ({WEIGHTS_FILE} + {CONFIG_FILE})"
        )
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(
            f"refusing to load {path}: not a .safetensors file; SIGMA checkpoints are a folder "
            f"with {WEIGHTS_FILE} and {CONFIG_FILE}"
        )


def read_checkpoint(path: str | Path) -> tuple[SigmaConfig, dict[str, torch.Tensor], Path]:
    """The config, head state dict and folder of a checkpoint folder or its
    ``.safetensors`` file (whose metadata holds the config when no config.json is beside
    it)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            unsafe = sorted(p.name for p in path.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
            if unsafe:
                raise CheckpointError(
                    f"refusing to load {path}: it holds pickle files ({', '.join(unsafe)}) and no "
                    f"{WEIGHTS_FILE}; pickles can run arbitrary code when loaded"
                )
            raise CheckpointError(f"checkpoint folder {path} has no {WEIGHTS_FILE}")
        folder = path
    else:
        _refuse_unsafe(path)
        weights, folder = path, path.parent

    try:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights} is not a valid safetensors file: {err}") from err

    config_path = folder / CONFIG_FILE
    if config_path.is_file():
        try:
            document = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{config_path} is not valid JSON: {err}") from err
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise CheckpointError(
                f"{config_path} is not a SIGMA checkpoint config (format {FORMAT!r})"
            )
        if document.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{config_path}: format_version {document.get('format_version')!r} is not supported "
                f"(this version reads {FORMAT_VERSION})"
            )
        config = SigmaConfig.from_dict(document.get("config", {}))
    elif metadata.get("format") == FORMAT and "config" in metadata:
        config = SigmaConfig.from_json(metadata["config"])
    else:
        raise CheckpointError(f"no {CONFIG_FILE} next to {weights} and no config in its metadata")
    # A backbone named relative to this folder is made absolute here, once, so that a
    # model loaded from it and saved elsewhere (e.g. after training) still finds it.
    resolved = resolve_backbone(config.backbone.name_or_path, folder)
    if resolved != config.backbone.name_or_path:
        config = config.replace(backbone={"name_or_path": resolved})
    return config, state, folder


def resolve_backbone(name_or_path: str, checkpoint_folder: Path) -> str:
    """A backbone named relative to the checkpoint folder resolves against it; anything
    else (hub id, absolute path) is returned unchanged."""
    candidate = Path(name_or_path).expanduser()
    if not candidate.is_absolute() and (checkpoint_folder / candidate).is_dir():
        return str((checkpoint_folder / candidate).resolve())
    return name_or_path


def load_checkpoint(path: str | Path, *, local_files_only: bool = False):
    """Build a :class:`~sigma_iml.models.sigma.SigmaNet` from a checkpoint: the named
    backbone through ``from_pretrained`` and the head from safetensors (strictly: every
    stored tensor must match the config's head, and none may be missing)."""
    from .backbone import DinoBackbone
    from .sigma import SigmaNet

    config, state, _ = read_checkpoint(path)
    backbone = DinoBackbone.from_pretrained(config.backbone, local_files_only=local_files_only)
    net = SigmaNet(config, backbone)
    try:
        net.sigma_head.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not match its config: {err}") from err
    return net.eval()
