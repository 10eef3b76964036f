"""Stage I (paper §3.3): supervised training of the head on pairs with exact masks,
``L_seg = BCE + Dice`` (our reading), AdamW with warm-up and cosine annealing.

:class:`StageOne` supplies the batches and the step; the :class:`~.trainer.Trainer`
runs them and writes ``OUT`` (``last/``, ``best/``, ``history.json``, ``curves.png``;
see :mod:`.trainer`). Run it again with the same arguments and an interrupted run
continues from ``last/``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..device import autocast, autocast_dtype, resolve_device
from .config import TrainConfig
from .datasets import list_pairs
from .losses import segmentation_loss
from .sources import Source, batch_size_of, make_priors, make_source, split_batch
from .state import Progress
from .trainer import (
    StepCallback,
    Trainer,
    TrainResult,
    build_network,
    checkpoint_instruction,
    run_identity,
)

log = logging.getLogger(__name__)


class StageOne:
    """Stage I's batches (one source of labelled pairs) and step (``L_seg``)."""

    name = "stage1"
    teacher = None

    def __init__(
        self,
        head: nn.Module,
        source: Source,
        config: TrainConfig,
        *,
        image_size: tuple[int, int],
        device: torch.device,
        amp: torch.dtype | None,
    ):
        self.head = head
        self.source = source
        self.config = config
        self.image_size = image_size
        self.device = device
        self.amp = amp
        #: Steps so far whose every mask was empty, and whether that was warned about.
        self.empty_steps = 0
        self.steps = 0
        self.warned_empty = False

    @property
    def pairs_per_epoch(self) -> int:
        return len(self.source)

    def batches(self, epoch: int, skip: int, progress: Progress) -> Iterator[Any | None]:
        return self.source.epoch(epoch, skip)

    def step(self, batch: dict[str, Any]) -> dict[str, float]:
        """``L_seg`` over ``batch``, gradients accumulated over micro-batches."""
        config = self.config
        total_size = batch_size_of(batch)
        sums = {"loss": 0.0, "bce": 0.0, "dice": 0.0}
        any_edited = False
        for chunk in split_batch(batch, config.micro_batch_size or config.batch_size):
            feats = self.source.features(chunk)
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
        self._check_masks(not any_edited)
        return sums

    def _check_masks(self, batch_empty: bool) -> None:
        """Warn once when a whole epoch's steps saw only empty masks: Stage I then learns
        to predict nothing, which is almost always a dataset problem (wrong mask column,
        masks inverted or saved as 0/1 where 0/255 was meant)."""
        self.steps += 1
        self.empty_steps += int(batch_empty)
        per_epoch = max(1, -(-len(self.source) // self.config.batch_size))
        if not self.warned_empty and self.steps >= per_epoch and self.empty_steps == self.steps:
            self.warned_empty = True
            log.warning(
                "Stage I: every mask of the first %d steps is empty; the network will learn "
                "to predict nothing. Check the dataset's masks (docs/reliability.md)",
                self.steps,
            )

    def after_step(self) -> None:
        pass


def train_stage1(
    config: TrainConfig,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    cache_features: str | os.PathLike | None = None,
    local_files_only: bool = False,
    on_step: StepCallback | None = None,
    instruction_branch=None,
    data_options: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume training) Stage I; see the module docstring.
    ``instruction_branch`` replaces the branch built from ``config.instruction`` (for
    tests: any callable from pairs to results with an ``intent_map``)."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    amp = autocast_dtype(device, config.precision)
    net = build_network(config, init, local_files_only=local_files_only).to(device)
    instruction = checkpoint_instruction(config, init)
    image_size = net.config.backbone.image_size
    # data_options: --format/--columns/--keys of the training data (cli/train.py).
    refs = list_pairs(data, require_masks=True, **(data_options or {}))
    val_refs = list_pairs(val, require_masks=True) if val is not None else None
    cache_root = Path(cache_features) if cache_features is not None else None

    def source(refs, name: str, *, train: bool) -> Source:
        return make_source(
            refs,
            net,
            config,
            device=device,
            amp=amp,
            train=train,
            cache_dir=None if cache_root is None else cache_root / name,
            priors=make_priors(config, refs, net, out / "priors" / name, instruction_branch),
        )

    train_source = source(refs, "train", train=True)
    val_source = None if val_refs is None else source(val_refs, "val", train=False)
    stage = StageOne(
        net.sigma_head, train_source, config, image_size=image_size, device=device, amp=amp
    )
    trainer = Trainer(
        stage,
        config,
        out,
        model_config=net.config,
        identity=run_identity(config, data=data, val=val, init=init, cache_features=cache_features),
        device=device,
        amp=amp,
        instruction=instruction,
        val_source=val_source,
        on_step=on_step,
        started=started,
    )
    return trainer.run()
