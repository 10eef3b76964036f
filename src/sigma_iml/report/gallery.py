"""What the report's gallery shows of a benchmark run, written while the run scores.

``sigma-iml benchmark`` hands :func:`benchmark_gallery` to
:func:`~sigma_iml.evaluation.benchmark.run_benchmark`, which calls one
:class:`GallerySaver` per dataset with every prediction as it is made: each pair is
decoded and predicted once, for the scores and the gallery together.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ..data.io import safe_filename
from ..data.pair import Pair
from ..evaluation.benchmark import BenchmarkConfig, SaverFactory
from ..methods import Prediction
from . import thumbnails as thumbs


class GallerySaver:
    """Writes what the report gallery shows, for one dataset: thumbnails of each pair
    (``thumbnails/<dataset>/<id>.{original,edited}.jpg``, ``.gt.png``) and per method the
    predicted mask (``predictions/<dataset>/<method>/<id>.png``, 0/255), an overlay on
    the edited image (``<id>.overlay.jpg``) and any intermediate maps the method returned
    (``<id>.<map>.png``), all at most ``max_side`` pixels."""

    def __init__(self, out: Path, dataset_key: str, max_side: int):
        self.out = out
        self.dataset_key = dataset_key
        self.max_side = max_side
        self._thumbnailed: set[str] = set()
        #: Method key -> names of the intermediate maps it saved.
        self.maps: dict[str, set[str]] = {}

    def save(self, method_key: str, pair: Pair, prediction: Prediction) -> None:
        stem = safe_filename(pair.id)
        edited = thumbs.shrink_rgb(pair.edited, self.max_side)
        size = (edited.shape[1], edited.shape[0])
        truth = None if pair.mask is None else thumbs.shrink_mask(pair.mask, size)
        if stem not in self._thumbnailed:
            folder = self.out / "thumbnails" / self.dataset_key
            thumbs.write_jpeg(
                folder / f"{stem}.original.jpg", thumbs.shrink_rgb(pair.original, self.max_side)
            )
            thumbs.write_jpeg(folder / f"{stem}.edited.jpg", edited)
            if truth is not None:
                thumbs.write_grey_png(folder / f"{stem}.gt.png", truth)
            self._thumbnailed.add(stem)
        folder = self.out / "predictions" / self.dataset_key / method_key
        predicted = thumbs.shrink_mask(prediction.mask, size)
        thumbs.write_grey_png(folder / f"{stem}.png", predicted)
        thumbs.write_jpeg(folder / f"{stem}.overlay.jpg", thumbs.overlay(edited, predicted, truth))
        names = self.maps.setdefault(method_key, set())
        for name, values in _intermediate_maps(prediction).items():
            small = thumbs.resize_grey(thumbs.grey_map(values), size)
            thumbs.write_grey_png(folder / f"{stem}.{safe_filename(name)}.png", small)
            names.add(safe_filename(name))


def _intermediate_maps(prediction: Prediction) -> dict[str, np.ndarray]:
    """2-D maps worth showing: ``extras["intermediates"]`` and a non-binary probability."""
    maps: dict[str, np.ndarray] = {}
    probability = np.asarray(prediction.probability)
    if probability.size and not np.isin(probability, (0.0, 1.0)).all():
        maps["probability"] = probability
    intermediates = prediction.extras.get("intermediates")
    if isinstance(intermediates, dict):
        for name, value in intermediates.items():
            array = np.asarray(value) if isinstance(value, np.ndarray) else None
            if array is not None and array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
                array = array.squeeze()
            if array is not None and array.ndim == 2 and array.size:
                maps[str(name)] = array.astype(np.float32)
    return maps


def benchmark_gallery(config: BenchmarkConfig) -> SaverFactory | None:
    """The gallery savers of a benchmark run (one per dataset, in the run folder), or
    None when the config does not ask for saved predictions."""
    if not config.save_predictions:
        return None
    return partial(GallerySaver, config.out, max_side=config.thumbnail_size)
