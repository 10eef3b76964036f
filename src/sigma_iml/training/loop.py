"""What both stages share: the network to train, batch sources (images or cached
features), validation, the history log and resuming.

Device and precision are chosen at run time (``TrainConfig.device`` / ``precision``);
mixed precision is a local ``torch.autocast`` context (bf16 on CUDA), and nothing here
changes global torch state (no default dtype, no TF32 switch, no global seeding).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from ..evaluation.metrics import PixelScores
from ..models.config import SigmaConfig
from ..models.sigma import SigmaNet
from .config import TrainConfig
from .datasets import PairTrainingSet, collate_pairs, epoch_batches, steps_per_epoch
from .features import FeatureCache

log = logging.getLogger(__name__)

HISTORY_FILE = "history.json"
CURVES_FILE = "curves.png"


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA under ``auto``; float32 (None) on CPU, where bf16 is slower."""
    if config.precision == "fp32":
        return None
    if config.precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def checkpoint_instruction(
    config: TrainConfig, init: str | os.PathLike | None
) -> dict[str, Any] | None:
    """The instruction settings the trained checkpoints carry: the training config's
    ``instruction`` section, else those of the ``init`` checkpoint (paths made absolute),
    so that ``sigma:checkpoint=OUT/best`` runs with the models it was trained with."""
    if config.instruction is not None:
        return dict(config.instruction)
    if init is not None:
        from ..models.checkpoint import instruction_settings

        return instruction_settings(Path(init)) or None
    return None


def build_network(
    config: TrainConfig, init: str | os.PathLike | None, *, local_files_only: bool = False
) -> SigmaNet:
    """The network to train: from ``init`` (a SIGMA checkpoint) when given, else a
    fresh head (seeded by ``config.seed``, without touching the global RNG) on the
    configured backbone."""
    from ..models.backbone import DinoBackbone
    from ..models.checkpoint import load_checkpoint

    if init is not None:
        return load_checkpoint(init, local_files_only=local_files_only)
    model = config.model or SigmaConfig()
    backbone = DinoBackbone.from_pretrained(model.backbone, local_files_only=local_files_only)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return SigmaNet(model, backbone)


# ----------------------------------------------------------------------------- sources


class ImageSource:
    """Batches decoded from images; features are computed by the frozen backbone."""

    def __init__(
        self,
        dataset: PairTrainingSet,
        net: SigmaNet,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        amp: torch.dtype | None,
        num_workers: int = 0,
    ):
        self.dataset = dataset
        self.net = net
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.amp = amp
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.dataset)

    def epoch(self, epoch: int, skip: int = 0, *, shuffle: bool = True) -> Iterator[dict | None]:
        self.dataset.set_epoch(epoch)
        if shuffle:
            batches = [
                b.tolist() for b in epoch_batches(len(self), self.batch_size, self.seed, epoch)
            ]
        else:
            order = list(range(len(self)))
            batches = [
                order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)
            ]
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches[skip:],
            collate_fn=collate_pairs,
            num_workers=self.num_workers,
        )
        yield from loader

    def features(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """``{slot: [levels]}`` for every image slot of the batch, and its mask, from
        one backbone forward over all slots."""
        slots = [s for s in ("original", "edited", "partner") if s in batch]
        images = torch.cat([batch[s] for s in slots]).to(self.device, non_blocking=True)
        with autocast(self.device, self.amp):
            maps = self.net.backbone(images)
        size = batch["original"].shape[0]
        out: dict[str, Any] = {
            slot: [level[i * size : (i + 1) * size] for level in maps]
            for i, slot in enumerate(slots)
        }
        for key in ("mask", "prior"):
            if key in batch:
                out[key] = batch[key].to(self.device)
        return out


class CachedSource:
    """Batches read from a :class:`FeatureCache`; flips are done in feature space (no
    crop: see :mod:`.features`)."""

    def __init__(
        self,
        cache: FeatureCache,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        hflip_probability: float = 0.0,
        priors=None,
    ):
        self.cache = cache
        self.priors = priors
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.hflip_probability = hflip_probability

    def __len__(self) -> int:
        return len(self.cache)

    def epoch(self, epoch: int, skip: int = 0, *, shuffle: bool = True) -> Iterator[dict]:
        if shuffle:
            batches = epoch_batches(len(self), self.batch_size, self.seed, epoch)
        else:
            order = np.arange(len(self))
            batches = [
                order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)
            ]
        for indices in batches[skip:]:
            flips = None
            if shuffle and self.hflip_probability > 0:
                flips = np.array(
                    [
                        np.random.default_rng([self.seed, epoch, int(i), 1]).random()
                        < self.hflip_probability
                        for i in indices
                    ]
                )
            batch = {"indices": torch.as_tensor(indices), **self.cache.batch(indices, flips=flips)}
            if self.priors is not None:
                prior = torch.from_numpy(self.priors.batch(indices))
                if flips is not None and flips.any():
                    rows = torch.from_numpy(flips)
                    prior[rows] = prior[rows].flip(-1)
                batch["prior"] = prior
            yield batch

    def features(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = {slot: [level.to(self.device) for level in batch[slot]] for slot in self.cache.slots}
        for key in ("mask", "prior"):
            if key in batch:
                out[key] = batch[key].to(self.device)
        return out


def split_batch(batch: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """Cut a batch into micro-batches of ``size`` (gradient accumulation)."""
    total = (
        len(batch["original"][0]) if isinstance(batch["original"], list) else len(batch["original"])
    )
    if size >= total:
        return [batch]
    chunks = []
    for start in range(0, total, size):
        chunk = {}
        for key, value in batch.items():
            if isinstance(value, list):
                chunk[key] = [v[start : start + size] for v in value]
            else:
                chunk[key] = value[start : start + size]
        chunks.append(chunk)
    return chunks


def batch_size_of(batch: dict[str, Any]) -> int:
    first = batch["original"]
    return len(first[0]) if isinstance(first, list) else len(first)


# --------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(
    head: torch.nn.Module, source, *, image_size: tuple[int, int], device, amp
) -> dict[str, Any]:
    """Per-image F1 and IoU (IMDL-BenCo's definitions, :class:`PixelScores`) of
    ``sigmoid(logits) > 0.5`` against the ground truth, both at the model's input size
    (masks resized nearest), over the un-augmented view of every pair."""
    was_training = head.training
    head.eval()
    scores = PixelScores()
    try:
        for batch in source.epoch(0, shuffle=False):
            if batch is None:
                continue
            feats = source.features(batch)
            with autocast(device, amp):
                out = head(feats["original"], feats["edited"], feats.get("prior"), image_size)
            probability = torch.sigmoid(out.logits.float()).cpu().numpy()
            masks = feats["mask"].cpu().numpy() > 0.5
            for p, m in zip(probability, masks, strict=True):
                scores.update(p[0], m[0])
    finally:
        head.train(was_training)
    summary = scores.summary()
    summary["resolution"] = f"{image_size[0]}x{image_size[1]}"
    return summary


# ------------------------------------------------------------------------------ history


class History:
    """Loss and validation curves of a run: ``DIR/history.json`` and ``DIR/curves.png``.

    ``steps`` holds one entry per ``log_every`` optimizer steps (mean of each logged
    term over them, and the learning rate); ``epochs`` one entry per validation."""

    def __init__(self, directory: Path, log_every: int, stage: str):
        self.directory = Path(directory)
        self.log_every = log_every
        self.stage = stage
        self.steps: list[dict[str, float]] = []
        self.epochs: list[dict[str, Any]] = []
        self._pending: dict[str, list[float]] = {}

    def load(self, upto_step: int) -> None:
        """Reload the history of an interrupted run, dropping entries past ``upto_step``
        (they will be recomputed identically)."""
        path = self.directory / HISTORY_FILE
        if not path.exists():
            return
        data = json.loads(path.read_text(encoding="utf-8"))
        self.steps = [s for s in data.get("steps", []) if s["step"] <= upto_step]
        self.epochs = [e for e in data.get("epochs", []) if e["step"] <= upto_step]

    def log_step(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self._pending.setdefault(key, []).append(float(value))
        if step % self.log_every == 0:
            self.flush_steps(step)

    def flush_steps(self, step: int) -> None:
        if not self._pending:
            return
        entry = {"step": step, **{k: float(np.mean(v)) for k, v in self._pending.items()}}
        self.steps.append(entry)
        self._pending = {}
        log.info("step %d: %s", step, {k: round(v, 5) for k, v in entry.items() if k != "step"})

    def log_epoch(self, entry: dict[str, Any]) -> None:
        self.epochs.append(entry)

    def write(self) -> None:
        from .curves import plot_curves

        self.directory.mkdir(parents=True, exist_ok=True)
        document = {"stage": self.stage, "steps": self.steps, "epochs": self.epochs}
        path = self.directory / HISTORY_FILE
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, path)
        plot_curves(document, self.directory / CURVES_FILE)


def run_identity(config: TrainConfig, **inputs: Any) -> dict[str, Any]:
    """What must be unchanged for ``DIR/last`` to be resumed: the training config and
    the inputs (data paths, init checkpoint, cache folder)."""
    return {
        "config": config.to_dict(),
        **{k: (None if v is None else str(Path(v).resolve())) for k, v in inputs.items()},
    }


def check_resumable(stored: dict[str, Any], current: dict[str, Any], directory: Path) -> None:
    if stored != current:
        differing = sorted(
            key for key in set(stored) | set(current) if stored.get(key) != current.get(key)
        )
        raise ConfigError(
            f"{directory} holds an interrupted run with a different {', '.join(differing)}; "
            "resume with the same config and inputs, or use another --out folder"
        )


StepCallback = Callable[[int], None]


def steps_total(config: TrainConfig, count: int) -> int:
    total = config.epochs * steps_per_epoch(count, config.batch_size)
    return min(total, config.max_steps) if config.max_steps is not None else total
