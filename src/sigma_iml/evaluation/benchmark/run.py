"""Running a benchmark: every method on every dataset, then the robustness study."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ...data.pair import Pair
from ...data.readers import open_dataset, take
from ...errors import ConfigError
from ...methods import MaskMethod, Prediction, build_method
from ..evaluate import PredictionHook, evaluate
from ..robustness import RobustnessResult, run_robustness
from .config import BenchmarkConfig
from .tables import BenchmarkRun
from .writers import write_run


class PredictionSaver(Protocol):
    """Receives every prediction made on one dataset, as it is made (the report's
    gallery, :func:`sigma_iml.report.gallery.benchmark_gallery`, writes thumbnails)."""

    #: Method key -> names of the intermediate maps saved (``results.json`` lists them).
    maps: dict[str, set[str]]

    def save(self, method_key: str, pair: Pair, prediction: Prediction) -> None: ...


#: Makes the saver of one dataset from the dataset's key.
SaverFactory = Callable[[str], PredictionSaver]


def _keyed(saver: PredictionSaver, method_keys: Sequence[str]) -> PredictionHook:
    """:func:`evaluate`'s per-prediction hook, naming each method by its key."""

    def on_prediction(index: int, pair: Pair, prediction: Prediction) -> None:
        saver.save(method_keys[index], pair, prediction)

    return on_prediction


def _scoring(config: BenchmarkConfig) -> dict[str, Any]:
    """How pairs are scored, the same in Table 1 and in the robustness study."""
    return {
        "resolution": config.size,
        "include_empty": config.include_empty,
        "workers": config.workers,
    }


def _check_paths(config: BenchmarkConfig) -> None:
    missing = [d for d in config.datasets if not d.path.exists()]
    if missing:
        raise ConfigError(
            "dataset path not found: "
            + "; ".join(f"{d.name}: {d.path}" for d in missing)
            + " (edit the config, or run a subset with --dataset NAME)"
        )


def run_benchmark(
    config: BenchmarkConfig,
    *,
    log: Callable[[str], None] = lambda message: None,
    gallery: SaverFactory | None = None,
) -> BenchmarkRun:
    """Run every method on every dataset (and the robustness study if configured) and
    write the run folder. Methods are built once and reused for every dataset.

    ``gallery`` saves the predictions when the config asks for it (``save_predictions``);
    it is required then, and refused otherwise, so ``results.json`` tells the truth."""
    if config.save_predictions != (gallery is not None):
        raise ConfigError(
            "save_predictions: true needs a gallery saver "
            "(sigma_iml.report.gallery.benchmark_gallery)"
            if config.save_predictions
            else "a gallery saver was given but the config has save_predictions: false"
        )
    _check_paths(config)
    start = time.perf_counter()
    methods = [build_method(entry.spec) for entry in config.methods]
    method_keys = [entry.key for entry in config.methods]
    run = BenchmarkRun(config=config)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    for dataset in config.datasets:
        log(f"{dataset.name}: scoring {len(methods)} method(s)")
        refs = take(
            open_dataset(dataset.path, format=dataset.format, **dataset.options), config.limit
        )
        saver = None if gallery is None else gallery(dataset.key)
        results = evaluate(
            refs,
            methods,
            dataset=dataset.name,
            on_prediction=None if saver is None else _keyed(saver, method_keys),
            **_scoring(config),
        )
        for entry, result in zip(config.methods, results):
            result.method = entry.name
        run.results.extend(results)
        if saver is not None:
            run.maps[dataset.key] = {k: sorted(v) for k, v in saver.maps.items()}
    if config.robustness is not None:
        run.robustness = _run_robustness(config, methods)
    run.seconds = time.perf_counter() - start
    write_run(run)
    return run


def _run_robustness(
    config: BenchmarkConfig, methods: Sequence[MaskMethod]
) -> list[RobustnessResult]:
    settings = config.robustness
    assert settings is not None
    wanted = settings.methods
    chosen = [
        (entry, method)
        for entry, method in zip(config.methods, methods)
        if wanted is None or entry.name in wanted or entry.spec in wanted
    ]
    results = []
    for dataset in config.datasets:
        if settings.datasets is not None and dataset.name not in settings.datasets:
            continue
        # The smaller limit wins: --limit on the command line also shortens the study.
        limits = [n for n in (settings.limit, config.limit) if n is not None]
        limit = min(limits) if limits else None
        refs = take(open_dataset(dataset.path, format=dataset.format, **dataset.options), limit)
        results.append(
            run_robustness(
                refs,
                [method for _, method in chosen],
                labels=[entry.name for entry, _ in chosen],
                levels=settings.levels(),
                target=settings.target,
                dataset=dataset.name,
                seed=settings.seed,
                **_scoring(config),
            )
        )
    return results
