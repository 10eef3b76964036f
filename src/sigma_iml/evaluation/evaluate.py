"""Scoring methods against ground-truth masks, streamed over a dataset."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data.loading import Loaded, batched, iter_loaded
from ..data.pair import Pair, PairRef, resize_pair
from ..errors import DataError
from ..methods import MaskMethod, Prediction
from .metrics import PixelScores

#: Columns of a result row, in the order result tables (JSON, CSV) list them.
RESULT_FIELDS = (
    "dataset",
    "method",
    "method_spec",
    "params",
    "resolution",
    "n",
    "f1",
    "iou",
    "f1_micro",
    "iou_micro",
    "n_empty_gt",
    "empty_gt_included",
    "n_failed",
    "seconds",
)


#: Called with each prediction as it is scored: (index of the method, the pair as scored,
#: the prediction); e.g. the benchmark's gallery saves thumbnails through it.
PredictionHook = Callable[[int, Pair, Prediction], None]


@dataclass
class MethodResult:
    """One method's scores on one dataset; metrics are fractions in [0, 1]."""

    dataset: str
    method: str
    params: dict[str, Any]
    resolution: str
    scores: PixelScores
    per_image: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        summary = self.scores.summary()
        return {
            "dataset": self.dataset,
            "method": self.method,
            "params": self.params,
            "resolution": self.resolution,
            "n": summary["n"],
            "f1": summary["f1"],
            "iou": summary["iou"],
            "f1_micro": summary["f1_micro"],
            "iou_micro": summary["iou_micro"],
            "n_empty_gt": summary["n_empty_gt"],
            "empty_gt_included": summary["empty_gt_included"],
            "n_failed": len(self.failures),
            "seconds": self.seconds,
        }


def _score_pair(pair: Pair, resolution: int | None) -> Pair:
    if resolution is None:
        return pair
    return resize_pair(pair, (resolution, resolution))


def evaluate(
    refs: Iterable[PairRef],
    methods: Sequence[MaskMethod],
    *,
    dataset: str = "dataset",
    resolution: int | None = 518,
    include_empty: bool = False,
    workers: int = 2,
    on_item: Callable[[Loaded], None] | None = None,
    on_prediction: PredictionHook | None = None,
) -> list[MethodResult]:
    """Score every method on every pair of ``refs``, decoding each pair once.

    ``resolution``: an int scores at that square size (images resized bilinear, the
    ground truth nearest, as the paper's baselines are computed at 518x518); ``None``
    scores at each edited image's native size. Pairs that fail to load, or have no
    ground truth, are recorded in ``failures`` and skipped; the run goes on.
    ``on_prediction`` sees every prediction after it is timed, at the scoring resolution.
    """
    label = "native" if resolution is None else str(resolution)
    results = [
        MethodResult(
            dataset, method.name, method.params(), label, PixelScores(include_empty=include_empty)
        )
        for method in methods
    ]
    batch_size = max((m.batch_size for m in methods), default=1)
    for chunk in batched(iter_loaded(refs, workers=workers), batch_size):
        ready: list[Pair] = []
        for loaded in chunk:
            if on_item is not None:
                on_item(loaded)
            if loaded.error is None and loaded.pair is not None and loaded.pair.mask is None:
                loaded.error = DataError(
                    "no ground-truth mask to score against", item=loaded.ref.id
                )
            if loaded.error is not None:
                for result in results:
                    result.failures.append({"id": loaded.ref.id, "error": str(loaded.error)})
                continue
            ready.append(_score_pair(loaded.pair, resolution))
        if not ready:
            continue
        for index, (method, result) in enumerate(zip(methods, results)):
            start = time.perf_counter()
            predictions = []
            for sub in batched(ready, method.batch_size):
                predictions.extend(method.predict_batch(sub))
            result.seconds += time.perf_counter() - start
            for pair, prediction in zip(ready, predictions):
                if on_prediction is not None:
                    on_prediction(index, pair, prediction)
                counts = result.scores.update(prediction.probability, pair.mask)
                result.per_image.append(
                    {
                        "id": pair.id,
                        "tp": counts.tp,
                        "fp": counts.fp,
                        "fn": counts.fn,
                        "gt_empty": counts.gt_positive == 0,
                        "f1": result.scores.f1_per_image[-1]
                        if counts.gt_positive or include_empty
                        else None,
                        "iou": result.scores.iou_per_image[-1]
                        if counts.gt_positive or include_empty
                        else None,
                    }
                )
    return results
