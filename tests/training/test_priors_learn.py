"""Prior sensitivity (issue 11): a head trained with informative priors uses them; and
bfloat16 gives the masks float32 gives on that trained head (issue 14).

Trained with ``priors: masks`` (ACSF over the concept masks ``make-pairs`` writes, the
prior a perfect grounder would give), the head must score clearly better on held-out
pairs when it gets their true prior than when it gets the uniform ε prior an
instruction-less pair gets. A head that ignored its prior input (as one trained only on
the uniform prior does) scores the same with both.

Tiny and on CPU: a random 4-block DINOv2 (patch 8: a 12x12 grid at 96 px), cached
features, 64 training and 24 held-out pairs of other seeds, 80 steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sigma_iml.data.synth import make_pairs
from sigma_iml.models.checkpoint import load_checkpoint
from sigma_iml.models.config import BackboneConfig, HeadConfig, SigmaConfig
from sigma_iml.testing import write_dinov2
from sigma_iml.training.config import OptimizerConfig, TrainConfig
from sigma_iml.training.datasets import PairTrainingSet, list_pairs
from sigma_iml.training.priors import build_priors
from sigma_iml.training.sources import ImageSource
from sigma_iml.training.stage1 import train_stage1
from sigma_iml.training.trainer import validate

SIZE = 96
KINDS = ("add", "remove", "attribute change", "replace")
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread (two threads on two shared cores wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _source(net, heldout: Path, priors, amp=None) -> ImageSource:
    dataset = PairTrainingSet(
        list_pairs(heldout, require_masks=True), (SIZE, SIZE), augment=None, priors=priors
    )
    return ImageSource(dataset, net, batch_size=8, seed=0, device=CPU, amp=amp)


def _f1(net, heldout: Path, priors) -> float:
    source = _source(net, heldout, priors)
    return validate(net.sigma_head, source, image_size=(SIZE, SIZE), device=CPU, amp=None)["f1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A head trained for 80 steps with mask priors, its held-out pairs and their priors."""
    tmp_path = tmp_path_factory.mktemp("priors-learn")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _train(tmp_path: Path) -> dict:
    make_pairs(tmp_path / "train", 64, seed=31, noise=1.0, kinds=KINDS, size=(SIZE, SIZE))
    make_pairs(tmp_path / "held", 24, seed=32, noise=1.0, kinds=KINDS, size=(SIZE, SIZE))
    backbone = write_dinov2(tmp_path / "dinov2", patch_size=8, image_size=SIZE, num_hidden_layers=4)
    config = TrainConfig(
        model=SigmaConfig(
            backbone=BackboneConfig(
                name_or_path=str(backbone), image_size=(SIZE, SIZE), layers=(1, 2, 3)
            ),
            head=HeadConfig(embed_dim=32, num_heads=2, fpn_dim=16, decoder_dim=8),
        ),
        priors="masks",
        epochs=10,  # 8 steps per epoch: 80 steps
        batch_size=8,
        optimizer=OptimizerConfig(lr=3e-3),
        checkpoint_every=1000,
        log_every=8,
        cache_dtype="float32",
        device="cpu",
    )
    result = train_stage1(
        config,
        tmp_path / "train",
        tmp_path / "run",
        cache_features=tmp_path / "cache",
        local_files_only=True,
    )
    # The mask priors were built once, beside the feature cache, from the manifest.
    meta = json.loads((tmp_path / "cache" / "priors" / "train" / "meta.json").read_text())
    assert meta["complete"] and meta["source"] == "masks"

    net = load_checkpoint(tmp_path / "run" / "last", local_files_only=True)
    held_refs = list_pairs(tmp_path / "held", require_masks=True)
    true_priors = build_priors(
        tmp_path / "held-priors", held_refs, {}, (SIZE, SIZE), source="masks"
    )
    return {"net": net, "held": tmp_path / "held", "priors": true_priors, "steps": result.steps}


def test_a_head_trained_with_informative_priors_uses_them(trained: dict) -> None:
    # The stored priors are informative: 1 on the concepts, ε elsewhere.
    stored = np.asarray(trained["priors"].priors, dtype=np.float32)
    assert stored.max() == pytest.approx(1.0, abs=1e-3) and stored.min() < 0.02

    with_true_prior = _f1(trained["net"], trained["held"], trained["priors"])
    with_uniform_prior = _f1(trained["net"], trained["held"], None)
    report = {
        "steps": trained["steps"],
        "f1_true_prior": with_true_prior,
        "f1_uniform_prior": with_uniform_prior,
    }
    print(json.dumps(report))
    assert trained["steps"] == 80
    assert with_true_prior >= with_uniform_prior + 0.1, report


def test_bf16_gives_the_fp32_masks_of_a_trained_head(trained: dict) -> None:
    """bfloat16 autocast (what ``precision: auto`` picks on CUDA and AMX CPUs) over the
    backbone and the head: the masks agree with float32's on at least 99% of the pixels
    of every held-out pair, and probabilities differ by at most 0.02 on average. On a CPU
    without bf16 units this is emulated (slow, not fast), but computes the same."""
    net, held, priors = trained["net"], trained["held"], trained["priors"]
    head = net.sigma_head.eval()
    probabilities = {}
    for name, amp in (("fp32", None), ("bf16", torch.bfloat16)):
        source = _source(net, held, priors, amp=amp)
        outputs = []
        with torch.no_grad():
            for batch in source.epoch(0, shuffle=False):
                feats = source.features(batch)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp is not None):
                    out = head(feats["original"], feats["edited"], feats["prior"], (SIZE, SIZE))
                outputs.append(torch.sigmoid(out.logits.float()))
        probabilities[name] = torch.cat(outputs)
    fp32, bf16 = probabilities["fp32"], probabilities["bf16"]
    agreement = ((fp32 > 0.5) == (bf16 > 0.5)).float().mean(dim=(1, 2, 3))
    mean_difference = float((fp32 - bf16).abs().mean())
    print(json.dumps({"min_agreement": float(agreement.min()), "mean_abs_diff": mean_difference}))
    assert float(agreement.min()) >= 0.99, agreement
    assert mean_difference <= 0.02
