"""Pixel F1 / IoU against scikit-learn, and IMDL-BenCo's empty-ground-truth rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import f1_score, jaccard_score

from sigma_iml.evaluation.metrics import (
    PixelScores,
    confusion_counts,
    f1_from_counts,
    iou_from_counts,
)

masks = arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12)))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_per_image_scores_match_sklearn(data):
    target = data.draw(masks)
    pred = data.draw(arrays(np.float32, target.shape, elements=st.floats(0, 1, width=32)))
    counts = confusion_counts(pred, target)
    binary = pred > 0.5
    if target.any():
        assert f1_from_counts(counts.tp, counts.fp, counts.fn) == pytest.approx(
            f1_score(target.ravel(), binary.ravel(), zero_division=0), abs=1e-6
        )
        assert iou_from_counts(counts.tp, counts.fp, counts.fn) == pytest.approx(
            jaccard_score(target.ravel(), binary.ravel(), zero_division=0), abs=1e-6
        )
    else:
        # IMDL-BenCo: TP = 0, so F1 and IoU are 0 even for a perfect all-negative prediction.
        assert f1_from_counts(counts.tp, counts.fp, counts.fn) == 0.0
        assert iou_from_counts(counts.tp, counts.fp, counts.fn) == 0.0


def test_threshold_is_strictly_greater_than_half():
    target = np.array([[True, True]])
    assert confusion_counts(np.array([[0.5, 0.51]]), target).tp == 1


def test_imagewise_mean_and_micro_differ_and_match_sklearn():
    rng = np.random.default_rng(0)
    scores = PixelScores()
    targets, preds = [], []
    for size in (8, 20, 33):  # images of different sizes weigh differently in micro
        target = rng.random((size, size)) > 0.6
        pred = rng.random((size, size))
        targets.append(target)
        preds.append(pred)
        scores.update(pred, target)
    per_image = [f1_score(t.ravel(), (p > 0.5).ravel()) for t, p in zip(targets, preds)]
    assert scores.f1("imagewise") == pytest.approx(np.mean(per_image), abs=1e-7)
    all_t = np.concatenate([t.ravel() for t in targets])
    all_p = np.concatenate([(p > 0.5).ravel() for p in preds])
    assert scores.f1("micro") == pytest.approx(f1_score(all_t, all_p), abs=1e-7)
    assert scores.iou("micro") == pytest.approx(jaccard_score(all_t, all_p), abs=1e-7)
    assert scores.f1("micro") != pytest.approx(scores.f1("imagewise"), abs=1e-4)


def test_empty_ground_truth_excluded_by_default_and_counted():
    perfect = np.array([[True, False]])
    empty = np.zeros((1, 2), dtype=bool)
    excluded = PixelScores()
    excluded.update(perfect, perfect)
    excluded.update(empty, empty)
    assert excluded.n == 1 and excluded.n_empty_gt == 1
    assert excluded.f1() == pytest.approx(1.0, abs=1e-6)
    included = PixelScores(include_empty=True)
    included.update(perfect, perfect)
    included.update(empty, empty)
    assert included.n == 2 and included.n_empty_gt == 1
    assert included.f1() == pytest.approx(0.5, abs=1e-6)  # IMDL-BenCo scores the empty image 0


def test_summary_of_nothing_is_none_not_nan():
    summary = PixelScores().summary()
    assert summary["n"] == 0 and summary["f1"] is None and summary["iou_micro"] is None


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differs"):
        confusion_counts(np.zeros((2, 2)), np.zeros((2, 3), dtype=bool))
