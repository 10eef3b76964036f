"""Resumable training state without pickle: safetensors for tensors, JSON for the rest.

``DIR/last`` is a normal SIGMA checkpoint (``config.json`` + ``head.safetensors``, see
:mod:`sigma_iml.models.checkpoint`) with three more files::

    optimizer.safetensors   AdamW's per-parameter tensors, keyed "<param index>/<name>"
    teacher.safetensors     Stage II's EMA teacher head (Stage II only)
    trainer_state.json      progress (:class:`Progress`: step, epoch, batch within the
                            epoch, labelled batches drawn, best score), AdamW's
                            hyper-parameters and scalar state, the training config

The learning rate is a pure function of the step (:mod:`.schedule`) and data order and
augmentation are functions of (seed, epoch, index) (:mod:`.datasets`), so neither needs
stored state; what a resumed run must know is where each data stream stands, which
:class:`Progress` records. The global torch RNG is neither stored nor set (no global
state is changed): it only drives dropout, which is off by default. The folder is
written beside its final place and renamed over it, so a run killed while saving leaves
the previous ``last`` intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..data.io import atomic_write_text
from ..errors import ConfigError
from ..models.checkpoint import save_checkpoint
from ..models.config import SigmaConfig

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
TEACHER_FILE = "teacher.safetensors"
STATE_FORMAT = "sigma-iml-train-state"
#: 2: progress gained ``labeled`` (Stage II's labelled stream position); a version-1
#: state is refused rather than resumed at a guessed position.
STATE_VERSION = 2

#: What chooses ``best/``: validation F1 (higher is better) when a validation set is
#: given, else the mean training loss of an epoch (lower is better).
BestMetric = Literal["val_f1", "train_loss"]


@dataclass(frozen=True)
class Best:
    """The checkpoint in ``best/``: its score under ``metric`` and the step it was taken."""

    metric: BestMetric
    score: float
    step: int

    def improves_on(self, other: Best | None) -> bool:
        """True when this score is better than ``other`` (None: nothing yet)."""
        if other is None:
            return True
        if self.metric == "val_f1":
            return self.score > other.score
        return self.score < other.score


@dataclass
class Progress:
    """Where a run stands; saved in ``trainer_state.json`` and resumed from.

    ``batch`` counts the batches of epoch ``epoch`` consumed, failed ones included (a
    batch whose every pair failed to load takes no step); ``labeled`` counts the
    labelled batches Stage II has drawn (one per unlabelled batch, failed ones
    included), so a resumed run continues the labelled stream where it stood, which
    ``step`` alone cannot tell once a batch has failed."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    labeled: int = 0
    best: Best | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        try:
            best = data.get("best")
            return cls(
                step=int(data["step"]),
                epoch=int(data["epoch"]),
                batch=int(data["batch"]),
                labeled=int(data["labeled"]),
                best=None if best is None else Best(**best),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"training progress {data!r} is not readable: {err}") from err


def optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state dict into tensors (for safetensors) and JSON data."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_files(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], data: dict
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for index, entries in data.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": data["param_groups"]})


def save_training_state(
    directory: str | os.PathLike,
    *,
    head: nn.Module,
    model_config: SigmaConfig,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    train_config: dict[str, Any],
    teacher: nn.Module | None = None,
    instruction: dict[str, Any] | None = None,
) -> Path:
    """Write the full state to ``directory``, replacing any previous one atomically.
    ``instruction``: the instruction settings written beside the checkpoint."""
    from safetensors.torch import save_file

    directory = Path(directory)
    staging = directory.with_name(f".{directory.name}.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    save_checkpoint(head, model_config, staging, instruction=instruction)
    tensors, optimizer_data = optimizer_to_files(optimizer)
    save_file(tensors, str(staging / OPTIMIZER_FILE), metadata={"format": STATE_FORMAT})
    if teacher is not None:
        state = {k: v.detach().contiguous().cpu() for k, v in teacher.state_dict().items()}
        save_file(state, str(staging / TEACHER_FILE), metadata={"format": STATE_FORMAT})
    document = {
        "format": STATE_FORMAT,
        "format_version": STATE_VERSION,
        "progress": progress.to_dict(),
        "optimizer": optimizer_data,
        "train_config": train_config,
    }
    atomic_write_text(staging / STATE_FILE, json.dumps(document, indent=1) + "\n")
    previous = directory.with_name(f".{directory.name}.old")
    if previous.exists():
        shutil.rmtree(previous)
    if directory.exists():
        os.replace(directory, previous)
    os.replace(staging, directory)
    if previous.exists():
        shutil.rmtree(previous)
    return directory


def has_training_state(directory: str | os.PathLike) -> bool:
    return (Path(directory) / STATE_FILE).is_file()


def load_training_state(
    directory: str | os.PathLike,
    *,
    head: nn.Module,
    optimizer: torch.optim.Optimizer,
    teacher: nn.Module | None = None,
) -> dict[str, Any]:
    """Load weights and optimizer state from ``directory`` into the given objects;
    returns the stored document, its ``progress`` read as a :class:`Progress` (and its
    ``train_config``)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        document = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read the training state in {directory}: {err}") from err
    if document.get("format") != STATE_FORMAT or document.get("format_version") != STATE_VERSION:
        raise ConfigError(f"{directory / STATE_FILE} is not a version-{STATE_VERSION} state")
    head.load_state_dict(load_file(str(directory / "head.safetensors")), strict=True)
    optimizer_from_files(
        optimizer, load_file(str(directory / OPTIMIZER_FILE)), document["optimizer"]
    )
    if teacher is not None:
        teacher.load_state_dict(load_file(str(directory / TEACHER_FILE)), strict=True)
    return {**document, "progress": Progress.from_dict(document["progress"])}
