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
the labelled pairs cycle alongside, one labelled batch drawn per unlabelled batch (a
failed one included), their position kept in the run's progress so that a resumed run
draws the labelled batches an uninterrupted one would. :class:`StageTwo` supplies the
batches and the step; the :class:`~.trainer.Trainer` writes the outputs of Stage I
(``last/``, ``best/``, ``history.json``, ``curves.png``), ``last/`` also holding the
teacher.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..device import autocast
from ..errors import ConfigError, DataError
from .config import TrainConfig
from .datasets import list_pairs, steps_per_epoch
from .ema import EmaTeacher
from .losses import (
    calibration_loss,
    disentanglement_loss,
    pseudo_labels,
    self_training_loss,
)
from .partners import PartnerStore
from .sources import Source, batch_size_of, split_batch
from .state import Progress
from .trainer import RunOptions, RunSetup, RunStage, TrainResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

#: A Stage II batch: a labelled batch (None when all its pairs failed) and an
#: unlabelled one.
Stage2Batch = tuple[dict[str, Any] | None, dict[str, Any]]


class StageTwo(RunStage):
    """Stage II's batches (unlabelled pairs with a labelled batch alongside) and step
    (``L_seg`` on the labelled batch, the three self-supervised terms on the other)."""

    name = "stage2"

    def __init__(self, run: RunSetup, teacher: EmaTeacher, labeled: Source, unlabeled: Source):
        super().__init__(run)
        self.ema = teacher
        self.teacher = teacher.module
        self.labeled = labeled
        self.unlabeled = unlabeled

    @property
    def pairs_per_epoch(self) -> int:
        return len(self.unlabeled)

    def labeled_stream(self, start: int) -> Iterator[dict | None]:
        """Labelled batches from the one numbered ``start`` (counted over all epochs)
        on, cycling epochs."""
        per_epoch = steps_per_epoch(len(self.labeled), self.config.batch_size)
        epoch, skip = divmod(start, per_epoch)
        while True:
            yield from self.labeled.epoch(epoch, skip)
            epoch, skip = epoch + 1, 0

    def batches(self, epoch: int, skip: int, progress: Progress) -> Iterator[Stage2Batch | None]:
        """One labelled batch is drawn for every unlabelled batch, failed ones included,
        and counted in ``progress.labeled``."""
        labeled = self.labeled_stream(progress.labeled)
        per_labeled_pass = steps_per_epoch(len(self.labeled), self.config.batch_size)
        failed_in_a_row = 0
        for batch in self.unlabeled.epoch(epoch, skip):
            labeled_batch = next(labeled)
            progress.labeled += 1
            failed_in_a_row = failed_in_a_row + 1 if labeled_batch is None else 0
            if failed_in_a_row >= per_labeled_pass:
                # L_seg is the dominant term (docs/design.md, "Training"): training on
                # without it would drift from Stage I's supervision unnoticed.
                raise DataError(
                    f"Stage II: no labelled batch loaded over a whole pass of the labelled "
                    f"set ({per_labeled_pass} batches; the log names each failing pair), so "
                    "L_seg would be missing: fix or replace the --labeled pairs"
                )
            yield None if batch is None else (labeled_batch, batch)

    def step(self, batch: Stage2Batch) -> dict[str, float]:
        """``L_seg`` on the labelled batch, the three self-supervised terms on the
        unlabelled one, gradients accumulated over micro-batches."""
        labeled_batch, unlabeled_batch = batch
        config, head, image_size = self.config, self.head, self.image_size
        device, amp = self.device, self.amp
        settings = config.stage2
        micro = config.micro_batch_size or config.batch_size
        sums = {
            key: 0.0
            for key in ("loss", "seg", "cal", "st", "dis", "confident_fraction", "qes_kept")
        }
        if labeled_batch is not None:
            sums["seg"] = self.segmentation_step(self.labeled, labeled_batch)[0]["loss"]

        total_size = batch_size_of(unlabeled_batch)
        for chunk in split_batch(unlabeled_batch, micro):
            feats = self.unlabeled.features(chunk)
            prior = feats.get("prior")
            share = batch_size_of(chunk) / total_size
            with torch.no_grad(), autocast(device, amp):
                teacher_out = self.ema(feats["original"], feats["edited"], prior, image_size)
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
        sums["loss"] = (
            sums["seg"]
            + settings.lambda_cal * sums["cal"]
            + settings.lambda_st * sums["st"]
            + settings.lambda_dis * sums["dis"]
        )
        return sums

    def after_step(self) -> None:
        self.ema.update(self.head)


def train_stage2(
    config: TrainConfig,
    labeled: str | os.PathLike,
    unlabeled: str | os.PathLike,
    init: str | os.PathLike,
    out: str | os.PathLike,
    *,
    partners: str | os.PathLike | None = None,
    data_options: dict[str, Any] | None = None,
    **options: Unpack[RunOptions],
) -> TrainResult:
    """Train (or resume) Stage II from the Stage I checkpoint ``init`` (``options``: see
    :func:`~.stage1.train_stage1`)."""
    if init is None:
        raise ConfigError("Stage II starts from a Stage I checkpoint: give --init")
    run = RunSetup(config, out, init, **options)

    labeled_refs = list_pairs(labeled, require_masks=True)
    # data_options: --format/--columns/--keys of the unlabelled corpus (cli/train.py).
    unlabeled_refs = list_pairs(unlabeled, require_masks=False, **(data_options or {}))
    partner_dir = Path(partners) if partners is not None else run.out / "partners"
    store = PartnerStore(
        partner_dir,
        config.stage2.partner,
        run.image_size,
        device=run.device,
        local_files_only=run.local_files_only,
    )
    computed = store.build(unlabeled_refs)
    log.info("partners: %d computed, %d reused", computed, len(unlabeled_refs) - computed)
    labeled_source = run.source(labeled_refs, "labeled", train=True)
    unlabeled_source = run.source(
        unlabeled_refs, "unlabeled", train=True, partners=store, with_masks=False
    )
    teacher = EmaTeacher(run.net.sigma_head, config.stage2.ema_momentum).to(run.device)
    stage = StageTwo(run, teacher, labeled_source, unlabeled_source)
    return run.trainer(stage, labeled=labeled, unlabeled=unlabeled, partners=partner_dir).run()
