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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .datasets import list_pairs
from .sources import Source
from .state import Progress
from .trainer import RunOptions, RunSetup, RunStage, TrainResult

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)


class StageOne(RunStage):
    """Stage I's batches (one source of labelled pairs) and step (``L_seg``)."""

    name = "stage1"
    teacher = None

    def __init__(self, run: RunSetup, source: Source):
        super().__init__(run)
        self.source = source
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
        sums, any_edited = self.segmentation_step(self.source, batch)
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
    init: str | os.PathLike | None = None,
    data_options: dict[str, Any] | None = None,
    **options: Unpack[RunOptions],
) -> TrainResult:
    """Train (or resume training) Stage I; see the module docstring. ``options``:
    ``val``, ``cache_features``, ``local_files_only``, ``on_step`` and
    ``instruction_branch`` (:class:`~.trainer.RunOptions`)."""
    run = RunSetup(config, out, init, **options)
    # data_options: --format/--columns/--keys of the training data (cli/train.py).
    refs = list_pairs(data, require_masks=True, **(data_options or {}))
    stage = StageOne(run, run.source(refs, "train", train=True))
    return run.trainer(stage, data=data).run()
