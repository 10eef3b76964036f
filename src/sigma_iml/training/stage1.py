"""Stage I (paper §3.3): supervised training of the head on pairs with exact masks,
``L_seg = BCE + Dice`` (our reading), AdamW with warm-up and cosine annealing.

``train_stage1`` writes into ``out``: ``last/`` (a SIGMA checkpoint plus optimizer and
progress, rewritten every ``checkpoint_every`` steps and at each epoch's end), ``best/``
(the checkpoint with the best validation F1, or the lowest mean training loss of an
epoch when no validation set is given), ``history.json`` and ``curves.png``. Run it again
with the same arguments and an interrupted run continues from ``last/``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..models.checkpoint import save_checkpoint
from .config import TrainConfig
from .datasets import PairTrainingSet, list_pairs, steps_per_epoch
from .features import build_feature_cache
from .loop import (
    CachedSource,
    History,
    ImageSource,
    StepCallback,
    autocast,
    autocast_dtype,
    batch_size_of,
    build_network,
    check_resumable,
    checkpoint_instruction,
    run_identity,
    split_batch,
    steps_total,
    validate,
)
from .losses import segmentation_loss
from .schedule import build_optimizer, learning_rate, set_learning_rate
from .state import has_training_state, load_training_state, save_training_state

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out: Path
    steps: int
    best: dict[str, Any] | None
    last_validation: dict[str, Any] | None
    seconds: float
    history: dict[str, Any] = field(default_factory=dict)


def make_source(
    refs,
    net,
    config: TrainConfig,
    *,
    device,
    amp,
    train: bool,
    cache_dir: Path | None,
    partners=None,
    priors=None,
    with_masks: bool = True,
):
    """An :class:`ImageSource` (augmenting when ``train``), or a :class:`CachedSource`
    over a feature cache built (once) in ``cache_dir``; ``priors`` (a
    :class:`~.priors.PriorStore` over the same refs) adds instruction priors."""
    image_size = net.config.backbone.image_size
    if cache_dir is None:
        dataset = PairTrainingSet(
            refs,
            image_size,
            augment=config.augment if train else None,
            seed=config.seed,
            with_masks=with_masks,
            partners=partners,
            priors=priors,
        )
        return ImageSource(
            dataset,
            net,
            batch_size=config.batch_size,
            seed=config.seed,
            device=device,
            amp=amp,
            num_workers=config.num_workers,
        )
    plain = PairTrainingSet(
        refs, image_size, augment=None, seed=config.seed, with_masks=with_masks, partners=partners
    )
    cache = build_feature_cache(
        cache_dir,
        net.backbone,
        plain,
        dtype=config.cache_dtype,
        batch_size=config.micro_batch_size or config.batch_size,
        device=device,
        autocast_dtype=amp,
        num_workers=config.num_workers,
    )
    return CachedSource(
        cache,
        batch_size=config.batch_size,
        seed=config.seed,
        device=device,
        hflip_probability=config.augment.hflip_probability if train else 0.0,
        priors=priors,
    )


def make_priors(config: TrainConfig, refs, net, directory: Path, branch=None):
    """The instruction priors of ``refs`` (built once in ``directory``), or None when
    the config has no instruction settings."""
    if config.instruction is None:
        return None
    if not net.config.head.use_instruction:
        raise ConfigError("instruction priors need a head with use_instruction: true")
    from .priors import build_priors

    return build_priors(
        directory, refs, config.instruction, net.config.backbone.image_size, branch=branch
    )


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
) -> TrainResult:
    """Train (or resume training) Stage I; see the module docstring.
    ``instruction_branch`` replaces the branch built from ``config.instruction`` (for
    tests: any callable from pairs to results with an ``intent_map``)."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from ..device import resolve_device

    device = resolve_device(config.device)
    amp = autocast_dtype(config, device)
    net = build_network(config, init, local_files_only=local_files_only).to(device)
    instruction = checkpoint_instruction(config, init)
    model_config = net.config
    image_size = model_config.backbone.image_size
    head = net.sigma_head

    refs = list_pairs(data, require_masks=True)
    val_refs = list_pairs(val, require_masks=True) if val is not None else None
    cache_root = Path(cache_features) if cache_features is not None else None
    source = make_source(
        refs,
        net,
        config,
        device=device,
        amp=amp,
        train=True,
        cache_dir=None if cache_root is None else cache_root / "train",
        priors=make_priors(config, refs, net, out / "priors" / "train", instruction_branch),
    )
    val_source = None
    if val_refs is not None:
        val_source = make_source(
            val_refs,
            net,
            config,
            device=device,
            amp=amp,
            train=False,
            cache_dir=None if cache_root is None else cache_root / "val",
            priors=make_priors(config, val_refs, net, out / "priors" / "val", instruction_branch),
        )

    optimizer = build_optimizer(head.parameters(), config.optimizer)
    total = steps_total(config, len(source))
    per_epoch = steps_per_epoch(len(source), config.batch_size)
    identity = run_identity(config, data=data, val=val, init=init, cache_features=cache_features)
    identity["stage"] = "stage1"
    history = History(out, config.log_every, "stage1")
    progress: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best": None}
    last_dir, best_dir = out / "last", out / "best"
    if has_training_state(last_dir):
        document = load_training_state(last_dir, head=head, optimizer=optimizer)
        check_resumable(document["train_config"], identity, last_dir)
        progress = document["progress"]
        history.load(progress["step"])
        log.info("resuming %s at step %d of %d", out, progress["step"], total)

    def save_last() -> None:
        save_training_state(
            last_dir,
            head=head,
            model_config=model_config,
            optimizer=optimizer,
            progress=progress,
            train_config=identity,
            instruction=instruction,
        )

    def end_of_epoch(epoch_losses: list[float]) -> dict[str, Any] | None:
        entry: dict[str, Any] = {
            "epoch": progress["epoch"] if progress["batch"] == 0 else progress["epoch"] + 1,
            "step": progress["step"],
            "train_loss": float(np.mean(epoch_losses)) if epoch_losses else None,
        }
        validation = None
        if val_source is not None:
            validation = validate(head, val_source, image_size=image_size, device=device, amp=amp)
            entry["val"] = validation
            score = validation["f1"]
            better = score is not None and (
                progress["best"] is None or score > progress["best"]["score"]
            )
            metric = "val_f1"
        else:
            score = entry["train_loss"]
            better = score is not None and (
                progress["best"] is None or score < progress["best"]["score"]
            )
            metric = "train_loss"
        if better:
            progress["best"] = {"metric": metric, "score": score, "step": progress["step"]}
            save_checkpoint(head, model_config, best_dir, instruction=instruction)
        history.flush_steps(progress["step"])
        history.log_epoch(entry)
        log.info("epoch %s: %s", entry["epoch"], entry)
        return validation

    head.train()
    last_validation = None
    step = progress["step"]
    while step < total:
        epoch, skip = progress["epoch"], progress["batch"]
        epoch_losses: list[float] = []
        finished_epoch = True
        for index, batch in enumerate(source.epoch(epoch, skip), start=skip):
            progress["batch"] = index + 1
            if batch is None:  # every pair of the batch failed to load (logged)
                continue
            set_learning_rate(optimizer, rate := learning_rate(step, total, config.optimizer))
            parts = _stage1_step(head, source, batch, config, optimizer, image_size, device, amp)
            step += 1
            progress["step"] = step
            epoch_losses.append(parts["loss"])
            history.log_step(step, {**parts, "lr": rate})
            if step % config.checkpoint_every == 0:
                save_last()
                history.write()
            if on_step is not None:
                on_step(step)
            if step >= total:
                finished_epoch = progress["batch"] >= per_epoch
                break
        if finished_epoch:
            progress["epoch"] = epoch + 1
            progress["batch"] = 0
        last_validation = end_of_epoch(epoch_losses)
        save_last()
        history.write()

    if not best_dir.exists():  # a resumed run that had already finished
        save_checkpoint(head, model_config, best_dir, instruction=instruction)
    history.write()
    return TrainResult(
        out=out,
        steps=step,
        best=progress["best"],
        last_validation=last_validation,
        seconds=time.perf_counter() - started,
        history={"steps": history.steps, "epochs": history.epochs},
    )


def _stage1_step(
    head, source, batch, config, optimizer, image_size, device, amp
) -> dict[str, float]:
    """One optimizer step over ``batch``, accumulating gradients over micro-batches."""
    total_size = batch_size_of(batch)
    sums = {"loss": 0.0, "bce": 0.0, "dice": 0.0}
    optimizer.zero_grad(set_to_none=True)
    for chunk in split_batch(batch, config.micro_batch_size or config.batch_size):
        feats = source.features(chunk)
        share = batch_size_of(chunk) / total_size
        with autocast(device, amp):
            out = head(feats["original"], feats["edited"], feats.get("prior"), image_size)
        loss, parts = segmentation_loss(
            out.logits, feats["mask"], config.loss.bce_weight, config.loss.dice_weight
        )
        (loss * share).backward()
        sums["loss"] += float(loss.detach()) * share
        for key, value in parts.items():
            sums[key] += value * share
    if config.optimizer.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(head.parameters(), config.optimizer.grad_clip)
    optimizer.step()
    return sums
