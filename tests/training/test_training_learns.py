"""The learning test (issue 5): on generated pairs whose edited image carries global
re-synthesis noise, Stage I must beat both its untrained start and pixdiff-fixed at its
best tau on held-out pairs, and Stage II must not lower it.

Everything is tiny and on CPU: a random 6-block DINOv2 (hidden 64, patch 8, so a 16x16
token grid at 128x128), a head of width 32, 128 training pairs, 24 held-out pairs, 16
unlabelled pairs. The backbone is random, not pretrained: the head has to learn the
difference signal from scratch, which makes this a test of the training code, not of
DINOv2. Features are cached (the backbone is frozen), so most of the time is the head.

Every score is the per-image mean F1 (IMDL-BenCo) at 128x128, the model's input size;
pixdiff-fixed runs at that resolution on the same held-out pairs. The numbers are
printed (``pytest -s``) and written to ``learning.json`` in the test's temp folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sigma_iml.data.pair import load_pair, resize_pair
from sigma_iml.data.readers import open_dataset
from sigma_iml.data.synth import make_pairs
from sigma_iml.evaluation.metrics import PixelScores
from sigma_iml.methods import build_method
from sigma_iml.models.config import BackboneConfig, HeadConfig, SigmaConfig
from sigma_iml.testing import write_dinov2
from sigma_iml.training.config import (
    OptimizerConfig,
    PartnerConfig,
    Stage2Config,
    TrainConfig,
)
from sigma_iml.training.datasets import PairTrainingSet, list_pairs
from sigma_iml.training.sources import ImageSource
from sigma_iml.training.stage1 import train_stage1
from sigma_iml.training.stage2 import train_stage2
from sigma_iml.training.trainer import build_network, validate

SIZE = 128
#: Local edits only: a global edit's mask is the whole image, which pixel differencing
#: gets right at any tau and which says nothing about noise robustness.
KINDS = ("add", "remove", "attribute change", "replace")
#: Strong re-synthesis noise (JPEG ~q55, resampling, sub-pixel shift, colour drift):
#: pixel differencing's best tau stays near F1 0.55 here.
NOISE = 1.5
TAUS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread for these tests, restored afterwards. On a machine with few
    cores shared with other jobs, OpenMP threads wait on each other: a head step measured
    0.32 s on one thread and 3.8 s on two, on two loaded cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model_config(backbone: Path) -> SigmaConfig:
    return SigmaConfig(
        backbone=BackboneConfig(
            name_or_path=str(backbone), image_size=(SIZE, SIZE), layers=(1, 3, 5)
        ),
        # Two heads of width 16: CPU attention runs faster at this width than at 4 x 8.
        # Every cross-level key (pool 1): pooling is a CPU-speed choice for the 37x37 grid
        # of the real model; on this 16x16 grid it is not needed, and the margins below
        # were established without it.
        head=HeadConfig(
            embed_dim=32, num_heads=2, fpn_dim=16, decoder_dim=8, drb_cross_level_pool=1
        ),
    )


def _pixdiff_scores(heldout: Path) -> dict[float, float]:
    pairs = [resize_pair(load_pair(ref), (SIZE, SIZE)) for ref in open_dataset(heldout)]
    scores = {}
    for tau in TAUS:
        method = build_method(f"pixdiff-fixed:tau={tau},resolution={SIZE}")
        tally = PixelScores()
        for pair in pairs:
            tally.update(method.predict(pair).probability, pair.mask)
        scores[tau] = tally.f1()
    return scores


def test_stage1_beats_untrained_and_pixdiff_and_stage2_keeps_it(tmp_path: Path) -> None:
    timings = {}
    start = time.perf_counter()
    make_pairs(tmp_path / "train", 128, seed=11, noise=NOISE, kinds=KINDS, size=(SIZE, SIZE))
    make_pairs(tmp_path / "heldout", 24, seed=12, noise=NOISE, kinds=KINDS, size=(SIZE, SIZE))
    make_pairs(tmp_path / "unlabeled", 16, seed=13, noise=NOISE, kinds=KINDS, size=(SIZE, SIZE))
    backbone = write_dinov2(tmp_path / "dinov2", patch_size=8, image_size=SIZE, num_hidden_layers=6)
    timings["data"] = time.perf_counter() - start

    stage1 = TrainConfig(
        model=_model_config(backbone),
        epochs=8,  # 16 steps per epoch: 128 steps
        batch_size=8,
        # A higher rate than stage1.yaml's: a tiny head from scratch, in few steps.
        optimizer=OptimizerConfig(lr=3e-3),
        checkpoint_every=1000,
        log_every=8,
        cache_dtype="float32",
        device="cpu",
    )

    # The untrained start: the same seeded head, scored before any step.
    start = time.perf_counter()
    net = build_network(stage1, None, local_files_only=True)
    heldout_set = PairTrainingSet(
        list_pairs(tmp_path / "heldout", require_masks=True), (SIZE, SIZE), augment=None
    )
    source = ImageSource(
        heldout_set, net, batch_size=8, seed=0, device=torch.device("cpu"), amp=None
    )
    untrained = validate(
        net.sigma_head, source, image_size=(SIZE, SIZE), device=torch.device("cpu"), amp=None
    )["f1"]
    pixdiff = _pixdiff_scores(tmp_path / "heldout")
    best_tau = max(pixdiff, key=pixdiff.get)
    timings["baselines"] = time.perf_counter() - start

    start = time.perf_counter()
    result1 = train_stage1(
        stage1,
        tmp_path / "train",
        tmp_path / "stage1",
        val=tmp_path / "heldout",
        cache_features=tmp_path / "cache1",
        local_files_only=True,
    )
    timings["stage1"] = time.perf_counter() - start
    stage1_f1 = result1.last_validation["f1"]

    stage2 = stage1.replace(
        model=None,
        epochs=8,  # 2 steps per epoch over the 16 unlabelled pairs: 16 steps
        optimizer=OptimizerConfig(lr=1e-4, warmup_fraction=0.0),
        # The resynthesis partner: a random tiny VAE would not reproduce the image.
        stage2=Stage2Config(partner=PartnerConfig(kind="resynthesis", resynthesis_level=NOISE)),
    )
    start = time.perf_counter()
    result2 = train_stage2(
        stage2,
        tmp_path / "train",
        tmp_path / "unlabeled",
        tmp_path / "stage1" / "last",
        tmp_path / "stage2",
        val=tmp_path / "heldout",
        cache_features=tmp_path / "cache2",
        local_files_only=True,
    )
    timings["stage2"] = time.perf_counter() - start
    stage2_f1 = result2.last_validation["f1"]

    report = {
        "untrained_f1": untrained,
        "stage1_f1": stage1_f1,
        "stage2_f1": stage2_f1,
        "pixdiff_f1": {str(k): v for k, v in pixdiff.items()},
        "pixdiff_best_tau": best_tau,
        "stage1_steps": result1.steps,
        "stage2_steps": result2.steps,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "stage2_last_losses": result2.history["steps"][-1],
    }
    (tmp_path / "learning.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))

    # Every Stage II term was computed and logged.
    for term in ("seg", "cal", "st", "dis"):
        assert np.isfinite(result2.history["steps"][-1][term])
    assert stage1_f1 > untrained + 0.15, report
    assert stage1_f1 > pixdiff[best_tau] + 0.05, report
    assert stage2_f1 >= stage1_f1 - 0.01, report
    assert (tmp_path / "stage1" / "curves.png").stat().st_size > 0
    assert (tmp_path / "stage2" / "best" / "head.safetensors").is_file()


if __name__ == "__main__":  # pragma: no cover - for running the numbers by hand
    pytest.main([__file__, "-s"])
