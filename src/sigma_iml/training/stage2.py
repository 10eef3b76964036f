"""Stage II (paper §3.3): adaptation to unlabelled editing pairs, keeping ``L_seg`` on
Stage I's labelled pairs.

Each optimizer step takes one labelled batch and one unlabelled batch ``(I_o, I_e)``
with its noise partner ``Ĩ = Dec(Enc(I_e))`` (:mod:`.partners`), and minimises

``L = L_seg + λ_cal L_cal + λ_st L_st + λ_dis L_dis`` (:mod:`.losses`):

- ``L_cal``: the student on ``(I_e, Ĩ)`` against an all-zero target;
- ``L_st``: the student on ``(I_o, I_e)`` against the EMA teacher's confident pixels;
- ``L_dis``: on the teacher's predicted-edit support, the student's DRB difference
  vectors of ``(I_o, I_e)`` and of ``(I_e, Ĩ)`` are pushed apart (cosine penalty).

The teacher starts as a copy of the ``--init`` checkpoint and follows the student by
EMA after every step. An epoch is a pass over the unlabelled pairs (paper: 5 epochs);
the labelled pairs cycle alongside. Outputs are those of Stage I (``last/``, ``best/``,
``history.json``, ``curves.png``), ``last/`` also holding the teacher.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..models.checkpoint import save_checkpoint
from .config import TrainConfig
from .datasets import list_pairs, steps_per_epoch
from .ema import EmaTeacher
from .loop import (
    History,
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
from .losses import (
    calibration_loss,
    disentanglement_loss,
    pseudo_labels,
    segmentation_loss,
    self_training_loss,
)
from .partners import PartnerStore
from .schedule import build_optimizer, learning_rate, set_learning_rate
from .stage1 import TrainResult, make_priors, make_source
from .state import has_training_state, load_training_state, save_training_state

log = logging.getLogger(__name__)


def train_stage2(
    config: TrainConfig,
    labeled: str | os.PathLike,
    unlabeled: str | os.PathLike,
    init: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val: str | os.PathLike | None = None,
    cache_features: str | os.PathLike | None = None,
    partners: str | os.PathLike | None = None,
    local_files_only: bool = False,
    on_step: StepCallback | None = None,
    instruction_branch=None,
) -> TrainResult:
    """Train (or resume) Stage II from the Stage I checkpoint ``init``
    (``instruction_branch``: see :func:`~.stage1.train_stage1`)."""
    if init is None:
        raise ConfigError("Stage II starts from a Stage I checkpoint: give --init")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from ..device import resolve_device

    device = resolve_device(config.device)
    amp = autocast_dtype(config, device)
    settings = config.stage2
    net = build_network(config, init, local_files_only=local_files_only).to(device)
    instruction = checkpoint_instruction(config, init)
    model_config = net.config
    image_size = model_config.backbone.image_size
    head = net.sigma_head

    labeled_refs = list_pairs(labeled, require_masks=True)
    unlabeled_refs = list_pairs(unlabeled, require_masks=False)
    partner_dir = Path(partners) if partners is not None else out / "partners"
    store = PartnerStore(
        partner_dir,
        settings.partner,
        image_size,
        device=device,
        local_files_only=local_files_only,
    )
    computed = store.build(unlabeled_refs)
    log.info("partners: %d computed, %d reused", computed, len(unlabeled_refs) - computed)

    cache_root = Path(cache_features) if cache_features is not None else None

    def cache_dir(name: str) -> Path | None:
        return None if cache_root is None else cache_root / name

    common = {"device": device, "amp": amp}

    def priors(refs, name: str):
        return make_priors(config, refs, net, out / "priors" / name, instruction_branch)

    labeled_source = make_source(
        labeled_refs,
        net,
        config,
        train=True,
        cache_dir=cache_dir("labeled"),
        priors=priors(labeled_refs, "labeled"),
        **common,
    )
    unlabeled_source = make_source(
        unlabeled_refs,
        net,
        config,
        train=True,
        cache_dir=cache_dir("unlabeled"),
        partners=store,
        priors=priors(unlabeled_refs, "unlabeled"),
        with_masks=False,
        **common,
    )
    val_source = None
    if val is not None:
        val_refs = list_pairs(val, require_masks=True)
        val_source = make_source(
            val_refs,
            net,
            config,
            train=False,
            cache_dir=cache_dir("val"),
            priors=priors(val_refs, "val"),
            **common,
        )

    teacher = EmaTeacher(head, settings.ema_momentum).to(device)
    optimizer = build_optimizer(head.parameters(), config.optimizer)
    total = steps_total(config, len(unlabeled_source))
    per_epoch = steps_per_epoch(len(unlabeled_source), config.batch_size)
    identity = run_identity(
        config,
        labeled=labeled,
        unlabeled=unlabeled,
        init=init,
        val=val,
        cache_features=cache_features,
        partners=partner_dir,
    )
    identity["stage"] = "stage2"
    history = History(out, config.log_every, "stage2")
    progress: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best": None}
    last_dir, best_dir = out / "last", out / "best"
    if has_training_state(last_dir):
        document = load_training_state(
            last_dir, head=head, optimizer=optimizer, teacher=teacher.module
        )
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
            teacher=teacher.module,
        )

    def labeled_stream(start_step: int) -> Iterator[dict | None]:
        """Labelled batches from the one numbered ``start_step`` on, cycling epochs."""
        spe = steps_per_epoch(len(labeled_source), config.batch_size)
        epoch, skip = divmod(start_step, spe)
        while True:
            yield from labeled_source.epoch(epoch, skip)
            epoch, skip = epoch + 1, 0

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
            score, metric = validation["f1"], "val_f1"
            better = score is not None and (
                progress["best"] is None or score > progress["best"]["score"]
            )
        else:
            score, metric = entry["train_loss"], "train_loss"
            better = score is not None and (
                progress["best"] is None or score < progress["best"]["score"]
            )
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
    labeled_batches = labeled_stream(step)
    while step < total:
        epoch, skip = progress["epoch"], progress["batch"]
        epoch_losses: list[float] = []
        finished_epoch = True
        for index, batch in enumerate(unlabeled_source.epoch(epoch, skip), start=skip):
            progress["batch"] = index + 1
            labeled_batch = next(labeled_batches)
            if batch is None:
                continue
            set_learning_rate(optimizer, rate := learning_rate(step, total, config.optimizer))
            parts = _stage2_step(
                head,
                teacher,
                labeled_source,
                labeled_batch,
                unlabeled_source,
                batch,
                config,
                optimizer,
                image_size,
                device,
                amp,
            )
            teacher.update(head)
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

    if not best_dir.exists():
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


def _stage2_step(
    head,
    teacher,
    labeled_source,
    labeled_batch,
    unlabeled_source,
    unlabeled_batch,
    config: TrainConfig,
    optimizer,
    image_size,
    device,
    amp,
) -> dict[str, float]:
    """One optimizer step: ``L_seg`` on the labelled batch, the three self-supervised
    terms on the unlabelled one, gradients accumulated over micro-batches."""
    settings = config.stage2
    micro = config.micro_batch_size or config.batch_size
    sums = {
        key: 0.0 for key in ("loss", "seg", "cal", "st", "dis", "confident_fraction", "qes_kept")
    }
    optimizer.zero_grad(set_to_none=True)
    if labeled_batch is not None:
        total_size = batch_size_of(labeled_batch)
        for chunk in split_batch(labeled_batch, micro):
            feats = labeled_source.features(chunk)
            share = batch_size_of(chunk) / total_size
            with autocast(device, amp):
                out = head(feats["original"], feats["edited"], feats.get("prior"), image_size)
            seg, _ = segmentation_loss(
                out.logits, feats["mask"], config.loss.bce_weight, config.loss.dice_weight
            )
            (seg * share).backward()
            sums["seg"] += float(seg.detach()) * share

    total_size = batch_size_of(unlabeled_batch)
    for chunk in split_batch(unlabeled_batch, micro):
        feats = unlabeled_source.features(chunk)
        prior = feats.get("prior")
        share = batch_size_of(chunk) / total_size
        with torch.no_grad(), autocast(device, amp):
            teacher_out = teacher(feats["original"], feats["edited"], prior, image_size)
        teacher_probability = torch.sigmoid(teacher_out.logits.float())
        labels, weights = pseudo_labels(
            teacher_probability, settings.confidence_threshold, settings.min_qes
        )
        with autocast(device, amp):
            real = head(feats["original"], feats["edited"], prior, image_size)
            # The noise pair gets the same prior (our reading): its target stays empty
            # where the instruction points, so the prior alone must not fire the mask.
            noise = head(feats["edited"], feats["partner"], prior, image_size)
        cal = calibration_loss(noise.logits)
        st = self_training_loss(real.logits, labels, weights)
        dis = disentanglement_loss(
            real.refined_levels,
            noise.refined_levels,
            (teacher_probability > 0.5).float(),
            settings.disentangle_margin,
        )
        unlabeled_loss = (
            settings.lambda_cal * cal + settings.lambda_st * st + settings.lambda_dis * dis
        )
        (unlabeled_loss * share).backward()
        sums["cal"] += float(cal.detach()) * share
        sums["st"] += float(st.detach()) * share
        sums["dis"] += float(dis.detach()) * share
        sums["confident_fraction"] += float(weights.mean()) * share
        if settings.min_qes is not None:
            kept = (weights.flatten(1).amax(1) > 0).float().mean()
            sums["qes_kept"] += float(kept) * share
    if settings.min_qes is None:
        del sums["qes_kept"]
    if config.optimizer.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(head.parameters(), config.optimizer.grad_clip)
    optimizer.step()
    sums["loss"] = (
        sums["seg"]
        + settings.lambda_cal * sums["cal"]
        + settings.lambda_st * sums["st"]
        + settings.lambda_dis * sums["dis"]
    )
    return sums
