"""The training loop both stages share: one :class:`Trainer` owns the optimizer steps,
resuming, checkpointing (``last/``), validation, the end of each epoch and the choice of
``best/``; a :class:`Stage` supplies only its batches and its step.

Device and precision are chosen at run time by :mod:`sigma_iml.device`
(``TrainConfig.device`` / ``precision``); mixed precision is a local autocast context,
and nothing here changes global torch state (no default dtype, no TF32 switch, no
global seeding).

A run folder ``OUT`` holds ``last/`` (a SIGMA checkpoint plus optimizer and progress,
rewritten every ``checkpoint_every`` steps and at each epoch's end), ``best/`` (the
checkpoint with the best validation F1, or the lowest mean training loss of an epoch
when no validation set is given), ``history.json`` and ``curves.png``. Run the same
command again and an interrupted run continues from ``last/``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

import numpy as np
import torch
from torch import nn

from ..device import autocast, autocast_dtype, resolve_device
from ..errors import ConfigError, DataError
from ..evaluation.metrics import PixelScores
from ..models.backbone import backbone_in_dtype
from ..models.checkpoint import save_checkpoint
from ..models.config import SigmaConfig
from ..models.sigma import SigmaNet
from .config import TrainConfig
from .datasets import list_pairs, steps_per_epoch
from .history import History
from .losses import segmentation_loss
from .schedule import build_optimizer, learning_rate, set_learning_rate
from .sources import Source, batch_size_of, make_priors, make_source, split_batch
from .state import Best, Progress, has_training_state, load_training_state, save_training_state

log = logging.getLogger(__name__)

#: Called with the step number after every optimizer step (tests use it to interrupt).
StepCallback = Callable[[int], None]


@dataclass
class TrainResult:
    out: Path
    steps: int
    best: Best | None
    last_validation: dict[str, Any] | None
    seconds: float
    history: dict[str, Any] = field(default_factory=dict)


class Stage(Protocol):
    """What a training stage supplies to the :class:`Trainer`."""

    #: ``stage1`` or ``stage2``: names the history and the run's identity.
    name: str
    #: The head being trained (the student).
    head: nn.Module
    #: A module saved in ``last/`` beside the head and restored on resume (Stage II's
    #: EMA teacher), or None.
    teacher: nn.Module | None

    @property
    def pairs_per_epoch(self) -> int:
        """The pairs one epoch passes over (the epoch's batches are cut from them)."""
        ...

    def batches(self, epoch: int, skip: int, progress: Progress) -> Iterator[Any | None]:
        """The batches of ``epoch`` from batch ``skip`` on, in a fixed order; None for a
        batch that failed entirely (it counts as a batch, takes no step). A stage with
        more streams records their position in ``progress`` as it draws from them."""
        ...

    def step(self, batch: Any) -> dict[str, float]:
        """Forward and backward over ``batch`` (gradients accumulate; the trainer zeroes,
        clips and steps); returns the logged terms, ``loss`` among them."""
        ...

    def after_step(self) -> None:
        """Called after each optimizer step (Stage II: the teacher's EMA update)."""
        ...


class Trainer:
    """Runs a :class:`Stage` to ``config``'s step count, writing into ``out``.

    ``identity`` (:func:`run_identity`) is stored in ``last/`` and must match for a run
    to be resumed; ``instruction`` is written beside every checkpoint; ``val_source``
    (optional) is scored at each epoch's end."""

    def __init__(
        self,
        stage: Stage,
        config: TrainConfig,
        out: Path,
        *,
        model_config: SigmaConfig,
        identity: dict[str, Any],
        device: torch.device,
        amp: torch.dtype | None,
        instruction: dict[str, Any] | None = None,
        val_source: Source | None = None,
        on_step: StepCallback | None = None,
        started: float | None = None,
    ):
        self.stage = stage
        self.config = config
        self.out = Path(out)
        self.model_config = model_config
        self.identity = {**identity, "stage": stage.name}
        self.device = device
        self.amp = amp
        self.instruction = instruction
        self.val_source = val_source
        self.on_step = on_step
        self.started = time.perf_counter() if started is None else started
        self.last_dir = self.out / "last"
        self.best_dir = self.out / "best"
        self.optimizer = build_optimizer(stage.head.parameters(), config.optimizer)
        self.total = steps_total(config, stage.pairs_per_epoch)
        self.per_epoch = steps_per_epoch(stage.pairs_per_epoch, config.batch_size)
        self.history = History(self.out, config.log_every, stage.name)
        self.progress = Progress()

    # ------------------------------------------------------------------- the run

    def run(self) -> TrainResult:
        self._resume()
        head = self.stage.head
        head.train()
        progress = self.progress
        last_validation = None
        while progress.step < self.total:
            epoch, skip = progress.epoch, progress.batch
            epoch_losses: list[float] = []
            finished_epoch = True
            batches_seen = 0
            for index, batch in enumerate(self.stage.batches(epoch, skip, progress), start=skip):
                progress.batch = index + 1
                batches_seen += 1
                if batch is None:  # every pair of the batch failed to load (logged)
                    continue
                epoch_losses.append(self._optimizer_step(batch))
                if progress.step % self.config.checkpoint_every == 0:
                    self.save_last()
                    self.history.write()
                if self.on_step is not None:
                    self.on_step(progress.step)
                if progress.step >= self.total:
                    finished_epoch = progress.batch >= self.per_epoch
                    break
            if batches_seen and not epoch_losses:
                # Without this a dataset none of whose pairs loads loops for ever, epoch
                # after epoch at step 0 (neither epochs nor max_steps is ever reached).
                raise DataError(
                    f"epoch {epoch + 1}: none of its {batches_seen} batches could be loaded "
                    "(every pair failed; the log names each one): fix or remove those pairs"
                )
            if finished_epoch:
                progress.epoch = epoch + 1
                progress.batch = 0
            last_validation = self._end_of_epoch(epoch_losses)
            self.save_last()
            self.history.write()

        if not self.best_dir.exists():  # a resumed run that had already finished
            self._save_best()
        self.history.write()
        return TrainResult(
            out=self.out,
            steps=progress.step,
            best=progress.best,
            last_validation=last_validation,
            seconds=time.perf_counter() - self.started,
            history={"steps": self.history.steps, "epochs": self.history.epochs},
        )

    def _resume(self) -> None:
        if not has_training_state(self.last_dir):
            return
        document = load_training_state(
            self.last_dir,
            head=self.stage.head,
            optimizer=self.optimizer,
            teacher=self.stage.teacher,
        )
        check_resumable(document["train_config"], self.identity, self.last_dir)
        self.progress = document["progress"]
        self.history.load(self.progress.step)
        log.info("resuming %s at step %d of %d", self.out, self.progress.step, self.total)

    def _optimizer_step(self, batch: Any) -> float:
        """One optimizer step over ``batch``; returns its loss."""
        progress, optimizer, settings = self.progress, self.optimizer, self.config.optimizer
        rate = learning_rate(progress.step, self.total, settings)
        set_learning_rate(optimizer, rate)
        optimizer.zero_grad(set_to_none=True)
        terms = self.stage.step(batch)
        if not math.isfinite(terms["loss"]):
            # Stop before the step: a NaN update would be saved as last/ and best/.
            raise ConfigError(
                f"step {progress.step + 1}: the training loss is {terms['loss']} (diverged); "
                f"lower optimizer.lr (now {settings.lr}) or check the data"
            )
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.stage.head.parameters(), settings.grad_clip)
        optimizer.step()
        self.stage.after_step()
        progress.step += 1
        self.history.log_step(progress.step, {**terms, "lr": rate})
        return terms["loss"]

    def _end_of_epoch(self, epoch_losses: list[float]) -> dict[str, Any] | None:
        """Validate (when there is a validation set), keep ``best/`` and log the epoch;
        returns the validation summary."""
        progress = self.progress
        entry: dict[str, Any] = {
            "epoch": progress.epoch if progress.batch == 0 else progress.epoch + 1,
            "step": progress.step,
            "train_loss": float(np.mean(epoch_losses)) if epoch_losses else None,
        }
        validation = None
        if self.val_source is not None:
            validation = validate(
                self.stage.head,
                self.val_source,
                image_size=self.model_config.backbone.image_size,
                device=self.device,
                amp=self.amp,
            )
            entry["val"] = validation
            candidate = None
            if validation["f1"] is not None:
                candidate = Best("val_f1", validation["f1"], progress.step)
        else:
            candidate = None
            if entry["train_loss"] is not None:
                candidate = Best("train_loss", entry["train_loss"], progress.step)
        if candidate is not None and candidate.improves_on(progress.best):
            progress.best = candidate
            self._save_best()
        self.history.flush_steps(progress.step)
        self.history.log_epoch(entry)
        log.info("epoch %s: %s", entry["epoch"], entry)
        return validation

    # --------------------------------------------------------------- checkpoints

    def save_last(self) -> None:
        """Write ``last/``: weights, optimizer, progress (and the stage's teacher)."""
        save_training_state(
            self.last_dir,
            head=self.stage.head,
            model_config=self.model_config,
            optimizer=self.optimizer,
            progress=self.progress,
            train_config=self.identity,
            instruction=self.instruction,
            teacher=self.stage.teacher,
        )

    def _save_best(self) -> None:
        save_checkpoint(
            self.stage.head, self.model_config, self.best_dir, instruction=self.instruction
        )


# ------------------------------------------------------------------------ validation


@torch.no_grad()
def validate(
    head: torch.nn.Module, source: Source, *, image_size: tuple[int, int], device, amp
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


# ---------------------------------------------------------------------- run set-up


class RunOptions(TypedDict, total=False):
    """The keyword options both stages' entry functions take beside their own data
    (:func:`~.stage1.train_stage1`, :func:`~.stage2.train_stage2`); :class:`RunSetup`
    takes them and gives their defaults."""

    #: Validation pairs with masks, scored at each epoch's end (they choose ``best/``).
    val: str | os.PathLike | None
    #: Folder of the backbone feature caches (and the priors beside them).
    cache_features: str | os.PathLike | None
    #: Load the backbone and instruction models from local files only.
    local_files_only: bool
    #: Called with the step number after every optimizer step.
    on_step: StepCallback | None
    #: Replaces the instruction branch built from ``config.instruction`` (for tests: any
    #: callable from pairs to results with an ``intent_map``).
    instruction_branch: Any


class RunSetup:
    """What both stages' entry functions set up before their stage: the ``out``
    folder, device and precision, the network (from ``init`` when given), the
    instruction settings its checkpoints carry, the feature sources built on them, and
    the validation pairs (listed here, so that a bad ``val`` fails before any feature
    is computed). The keyword options: see :class:`RunOptions`."""

    def __init__(
        self,
        config: TrainConfig,
        out: str | os.PathLike,
        init: str | os.PathLike | None,
        *,
        val: str | os.PathLike | None = None,
        cache_features: str | os.PathLike | None = None,
        local_files_only: bool = False,
        on_step: StepCallback | None = None,
        instruction_branch=None,
    ):
        self.started = time.perf_counter()
        self.config = config
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(config.device)
        self.amp = autocast_dtype(self.device, config.precision)
        self.local_files_only = local_files_only
        self.net = build_network(config, init, local_files_only=local_files_only).to(self.device)
        # The frozen backbone in the run's dtype (checkpoints hold the head only): no
        # per-step recast of its weights under bf16 (models/backbone.backbone_in_dtype).
        backbone_in_dtype(self.net.backbone, self.amp, in_place=True)
        self.instruction = checkpoint_instruction(config, init)
        self.image_size = self.net.config.backbone.image_size
        self.cache_root = Path(cache_features) if cache_features is not None else None
        self.instruction_branch = instruction_branch
        self.on_step = on_step
        #: The inputs every run's identity holds beside the stage's own data.
        self.inputs = {"init": init, "val": val, "cache_features": cache_features}
        self.val_refs = list_pairs(val, require_masks=True) if val is not None else None

    def source(self, refs, name: str, *, train: bool, **kwargs: Any) -> Source:
        """The source of ``refs``, its feature cache and priors kept under ``name``."""
        return make_source(
            refs,
            self.net,
            self.config,
            device=self.device,
            amp=self.amp,
            train=train,
            cache_dir=None if self.cache_root is None else self.cache_root / name,
            # Beside the feature cache, so runs sharing it share the priors too.
            priors=make_priors(
                self.config,
                refs,
                self.net,
                (self.cache_root or self.out) / "priors" / name,
                self.instruction,
                self.instruction_branch,
            ),
            **kwargs,
        )

    def trainer(self, stage: Stage, **inputs: Any) -> Trainer:
        """The trainer of ``stage``, validating on the ``val`` pairs (when given); the
        stage's data paths ``inputs`` join the run's identity (:func:`run_identity`)."""
        val_source = None
        if self.val_refs is not None:
            val_source = self.source(self.val_refs, "val", train=False)
        return Trainer(
            stage,
            self.config,
            self.out,
            model_config=self.net.config,
            identity=run_identity(self.config, **self.inputs, **inputs),
            device=self.device,
            amp=self.amp,
            instruction=self.instruction,
            val_source=val_source,
            on_step=self.on_step,
            started=self.started,
        )


class RunStage:
    """The head and run settings a stage's step works with, taken from its
    :class:`RunSetup` (the stages subclass it)."""

    def __init__(self, run: RunSetup):
        self.head = run.net.sigma_head
        self.config = run.config
        self.image_size = run.image_size
        self.device = run.device
        self.amp = run.amp

    def segmentation_step(
        self, source: Source, batch: dict[str, Any]
    ) -> tuple[dict[str, float], bool]:
        """``L_seg`` over a labelled ``batch`` of ``source``, backpropagated with
        gradients accumulated over micro-batches; returns its ``loss``, ``bce`` and
        ``dice`` means, and whether any of the batch's masks marks an edit."""
        config = self.config
        total_size = batch_size_of(batch)
        sums = {"loss": 0.0, "bce": 0.0, "dice": 0.0}
        any_edited = False
        for chunk in split_batch(batch, config.micro_batch_size or config.batch_size):
            feats = source.features(chunk)
            share = batch_size_of(chunk) / total_size
            with autocast(self.device, self.amp):
                out = self.head(
                    feats["original"], feats["edited"], feats.get("prior"), self.image_size
                )
            loss, parts = segmentation_loss(
                out.logits, feats["mask"], config.loss.bce_weight, config.loss.dice_weight
            )
            (loss * share).backward()
            sums["loss"] += float(loss.detach()) * share
            for key, value in parts.items():
                sums[key] += value * share
            any_edited = any_edited or bool(feats["mask"].any())
        return sums, any_edited


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


def checkpoint_instruction(
    config: TrainConfig, init: str | os.PathLike | None
) -> dict[str, Any] | None:
    """The instruction settings the trained checkpoints carry (and ``priors:
    instruction`` runs): those of the ``init`` checkpoint (paths made absolute) with the
    training config's ``instruction`` section over them key by key, so that
    ``sigma:checkpoint=OUT/best`` runs with the models it was trained with and a config
    can change one setting (``{parser: rules}``) and keep the init's models."""
    settings: dict[str, Any] = {}
    if init is not None:
        from ..models.checkpoint import instruction_settings

        settings = dict(instruction_settings(Path(init)) or {})
    if config.instruction is not None:
        settings.update(config.instruction)
    return settings or None


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


def steps_total(config: TrainConfig, count: int) -> int:
    """Optimizer steps of a run over ``count`` pairs per epoch (``max_steps`` caps it)."""
    total = config.epochs * steps_per_epoch(count, config.batch_size)
    return min(total, config.max_steps) if config.max_steps is not None else total
