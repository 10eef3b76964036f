"""Mask quality scores (and that they track real F1), and the exports: IMDL-BenCo JSON
with --min-quality and negatives, WebDataset shards read back by our own reader."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

from sigma_iml.annotation.export import export_imdlbenco, export_webdataset
from sigma_iml.annotation.layout import iter_run_records
from sigma_iml.annotation.quality import mean_confidence, passes, qes, quality_scores
from sigma_iml.annotation.runner import annotate
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.data.formats.webdataset import iter_webdataset
from sigma_iml.data.images import load_mask
from sigma_iml.data.synth import make_pairs
from sigma_iml.methods import MaskMethod, Prediction


def test_scores_on_known_maps():
    p = np.zeros((4, 4), np.float32)
    # The peer's convention: an empty prediction scores 0 and fails any positive filter.
    assert qes(p) == 0.0 and mean_confidence(p) == 0.0
    assert quality_scores(p) == {"qes": 0.0, "confidence": 0.0, "area": 0.0}
    assert not passes(quality_scores(p), 0.1, "qes")
    p[0, :] = 1.0  # 4 certain pixels
    p[1, :2] = 0.5  # 2 undecided ones
    assert qes(p) == pytest.approx(4 / 6)
    assert mean_confidence(p) == pytest.approx(4 / 6)  # |2p-1| is 1 or 0
    p[1, :2] = 0.75
    assert mean_confidence(p) == pytest.approx((4 + 2 * 0.5) / 6)
    assert quality_scores(p)["area"] == pytest.approx(6 / 16)
    assert passes({"confidence": 0.8}, 0.7, "confidence")
    assert not passes({"confidence": None}, 0.1, "confidence") and passes(None, None, "qes")


class BlurredDifference(MaskMethod):
    """A probability-producing method: the pixel difference, blurred and squashed
    through a sigmoid, so its maps are graded like a network's."""

    name = "blurred-difference"
    batch_size = 4

    def predict_batch(self, pairs):
        predictions = []
        for pair in pairs:
            diff = np.abs(pair.edited.astype(np.float32) - pair.original.astype(np.float32))
            blurred = cv2.GaussianBlur(diff.max(axis=2) / 255.0, (0, 0), 2.0)
            predictions.append(Prediction(1.0 / (1.0 + np.exp(-(blurred - 0.08) / 0.02))))
        return predictions


def _f1(gt: dict) -> float:
    return 2 * gt["tp"] / (2 * gt["tp"] + gt["fp"] + gt["fn"] + 1e-8)


def test_quality_tracks_f1_on_generated_pairs(tmp_path):
    """On generated pairs with re-synthesis noise, masks the score ranks higher are
    better against the exact ground truth (docs/annotation.md has the 90-pair numbers)."""
    records = []
    for noise in (0.5, 1.0):
        manifest = make_pairs(tmp_path / f"pairs{noise}", n=20, seed=int(10 * noise), noise=noise)
        run = tmp_path / f"run{noise}"
        annotate(iter_manifest(manifest), BlurredDifference(), run, progress=False)
        records += [r for r in iter_run_records(run) if r["quality"]["confidence"] is not None]
    f1 = np.array([_f1(r["gt"]) for r in records])
    confidence = np.array([r["quality"]["confidence"] for r in records])
    qes_score = np.array([r["quality"]["qes"] for r in records])
    rho_confidence, p_confidence = spearmanr(confidence, f1)
    rho_qes, _ = spearmanr(qes_score, f1)
    assert rho_confidence > 0.3 and p_confidence < 0.05, rho_confidence
    assert rho_qes > 0.2, rho_qes
    # What --min-quality is for: the better-scored half has the better masks.
    kept = confidence >= np.median(confidence)
    assert f1[kept].mean() > f1[~kept].mean() + 0.03


class _Graded(MaskMethod):
    """Pair i gets a map of confidence rising with i: a known quality per pair."""

    name = "graded"

    def predict_batch(self, pairs):
        out = []
        for pair in pairs:
            level = int(pair.id[-3:])
            p = np.zeros(pair.edited.shape[:2], np.float32)
            p[: p.shape[0] // 2] = 0.5 + 0.1 * level + 0.05
            out.append(Prediction(p))
        return out


def test_imdlbenco_export_filters_by_quality_and_adds_negatives(make_dataset, tmp_path):
    manifest = make_dataset(n=4)
    run = tmp_path / "run"
    summary = annotate(
        iter_manifest(manifest), _Graded(), run, min_quality=0.5, negatives=True, progress=False
    )
    # Confidence |2p-1| is 0.1, 0.3, 0.5, 0.7 for pairs 0..3.
    assert summary.total_ok == 4 and summary.exported == 2
    train = json.loads((run / "imdlbenco.json").read_text())
    test = json.loads((run / "imdlbenco_manipulated.json").read_text())
    assert [Path(e).stem for e, _ in test] == ["pair002", "pair003"]
    assert train[:2] == test and [row[1] for row in train[2:]] == ["Negative", "Negative"]
    assert all(Path(row[0]).is_absolute() and Path(row[0]).is_file() for row in train)
    assert [Path(o).parent.name for o, _ in train[2:]] == ["original", "original"]
    tests = json.loads((run / "test_datasets.json").read_text())
    assert tests == {"imdlbenco": str((run / "imdlbenco_manipulated.json").resolve())}
    # A second export with another name keeps the first entry of test_datasets.json.
    result = export_imdlbenco(run, run, name="all", metric="qes")
    assert result.manipulated == 4 and set(
        json.loads((run / "test_datasets.json").read_text())
    ) == {
        "imdlbenco",
        "all",
    }


def test_webdataset_export_reads_back(make_dataset, tmp_path):
    manifest = make_dataset(n=3)
    run = tmp_path / "run"
    annotate(iter_manifest(manifest), _Graded(), run, progress=False)
    result = export_webdataset(run, tmp_path / "wds", max_per_shard=2, min_quality=0.2)
    assert result.manipulated == 2 and result.below_quality == 1 and len(result.files) == 1
    by_id = {r["id"]: r for r in iter_run_records(run)}
    samples = list(iter_webdataset(tmp_path / "wds"))
    assert [s.id for s in samples] == ["pair001", "pair002"]
    for sample in samples:
        record = by_id[sample.id]
        assert sample.instruction == record["instruction"] and sample.original is not None
        assert np.array_equal(load_mask(sample.mask), load_mask(run / record["mask"]))
        assert np.array_equal(
            np.asarray(Image.open(record["edited"]).convert("RGB")),
            np.asarray(Image.open(io.BytesIO(sample.edited.data)).convert("RGB")),
        )
        assert sample.meta["quality"] == record["quality"] and sample.meta["method"] == "graded"
