"""Exports of an annotation run for training code: IMDL-BenCo JSON and WebDataset shards.

Both read the run's records (the newest per pair), keep the ``ok`` pairs whose quality
clears ``min_quality`` (:func:`~.quality.passes`), and order them by input position.

IMDL-BenCo (:func:`export_imdlbenco`) writes three files into ``dest``:

- ``<name>.json`` — the training list of IMDL-BenCo's ``JsonDataset``:
  ``[[absolute edited path, absolute mask path], ...]``, followed, with ``negatives``, by
  ``[absolute original path, "Negative"]`` rows (an unedited image whose ground truth is
  empty; pairs whose original is not a file on disk are left out and counted);
- ``<name>_manipulated.json`` — the manipulated rows only, for testing;
- ``test_datasets.json`` — IMDL-BenCo's mapping of test-set names to dataset paths
  (``{"<name>": "<absolute path of <name>_manipulated.json>"}``), merged into an existing
  file of that name so several exports can share one.

WebDataset (:func:`export_webdataset`) writes tar shards with
:func:`~sigma_iml.data.webdataset_writer.write_webdataset_shards`: per pair ``edited``, ``mask``,
``original`` (when on disk), the instruction and a JSON of metadata (method, quality,
parsed instruction, size, source).
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.io import atomic_write_text, remove_temporaries
from ..data.pair import PairRef
from ..errors import ConfigError
from .layout import iter_latest_records
from .quality import DEFAULT_QUALITY_METRIC, QUALITY_METRICS, QualityMetric, passes

TEST_DATASETS = "test_datasets.json"


@dataclass
class ExportResult:
    #: Pairs written (manipulated rows / samples).
    manipulated: int = 0
    #: ``[original, "Negative"]`` rows written.
    negatives: int = 0
    #: ``ok`` pairs left out by ``min_quality``.
    below_quality: int = 0
    #: Negatives asked for but left out: the original is not a file on disk.
    negatives_missing: int = 0
    #: ``ok`` pairs left out by ``exclude_unfaithful`` (a side effect or intent not executed).
    unfaithful: int = 0
    #: With ``exclude_unfaithful``: pairs kept because their record has no faithfulness
    #: field (annotated without ``--faithfulness``).
    without_faithfulness: int = 0
    files: list[str] | None = None


def selected_records(
    run: Path,
    *,
    min_quality: float | None = None,
    metric: QualityMetric = DEFAULT_QUALITY_METRIC,
    result: ExportResult | None = None,
    exclude_unfaithful: bool = False,
) -> Iterator[dict[str, Any]]:
    """The ``ok`` records of ``run`` that clear ``min_quality``, in input order,
    streamed one shard at a time; with ``exclude_unfaithful``, without the pairs whose
    ``faithfulness`` flags a side effect or an intent not executed (docs/faithfulness.md)."""
    if metric not in QUALITY_METRICS:
        raise ConfigError(
            f"unknown quality metric {metric!r}; metrics: {', '.join(QUALITY_METRICS)}"
        )
    if min_quality is not None and not math.isfinite(min_quality):
        # No score compares true with NaN: the export would be empty without a word.
        raise ConfigError(f"--min-quality must be a finite number, got {min_quality}")
    for record in iter_latest_records(Path(run)):
        if record.get("status") != "ok":
            continue
        if not passes(record.get("quality"), min_quality, metric):
            if result is not None:
                result.below_quality += 1
            continue
        if exclude_unfaithful:
            faithfulness = record.get("faithfulness")
            if not isinstance(faithfulness, dict):
                if result is not None:
                    result.without_faithfulness += 1
            elif faithfulness.get("side_effect") or faithfulness.get("not_executed"):
                if result is not None:
                    result.unfaithful += 1
                continue
        yield record


class _JsonListWriter:
    """Writes IMDL-BenCo's ``[[a, b], ...]`` one row per line, streamed to a hidden
    temporary file and renamed into place, so a million rows need no list in memory
    and a reader never sees half a file."""

    def __init__(self, path: Path):
        self.path = path
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._handle = self._tmp.open("w", encoding="utf-8")
        self._handle.write("[")
        self.count = 0

    def add(self, first: str, second: str) -> None:
        self._handle.write(("\n " if self.count == 0 else ",\n ") + json.dumps([first, second]))
        self.count += 1

    def commit(self) -> None:
        self._handle.write("\n]\n" if self.count else "]\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)


def export_imdlbenco(
    run: str | Path,
    dest: str | Path,
    *,
    name: str = "imdlbenco",
    min_quality: float | None = None,
    metric: QualityMetric = DEFAULT_QUALITY_METRIC,
    negatives: bool = False,
    exclude_unfaithful: bool = False,
) -> ExportResult:
    """Write ``<name>.json``, ``<name>_manipulated.json`` and ``test_datasets.json``."""
    run, dest = Path(run).resolve(), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # What an export killed part way left behind, so a finished rerun leaves no litter.
    for written in (f"{name}.json", f"{name}_manipulated.json", name, TEST_DATASETS):
        remove_temporaries(dest, glob.escape(written))
    result = ExportResult()
    train_path = dest / f"{name}.json"
    test_path = dest / f"{name}_manipulated.json"
    train, test = _JsonListWriter(train_path), _JsonListWriter(test_path)
    # Negatives follow all manipulated rows in the training list; their paths wait in a
    # side file rather than in memory.
    pending_negatives = dest / f".{name}.negatives.{os.getpid()}.tmp"
    try:
        with pending_negatives.open("w", encoding="utf-8") as side:
            for record in selected_records(
                run,
                min_quality=min_quality,
                metric=metric,
                result=result,
                exclude_unfaithful=exclude_unfaithful,
            ):
                edited = str(Path(record["edited"]).resolve())
                mask = str(run / record["mask"])
                train.add(edited, mask)
                test.add(edited, mask)
                if negatives:
                    original = record.get("original")
                    if original and Path(original).is_file():
                        side.write(json.dumps(str(Path(original).resolve())) + "\n")
                    else:
                        result.negatives_missing += 1
        with pending_negatives.open(encoding="utf-8") as side:
            for line in side:
                train.add(json.loads(line), "Negative")
                result.negatives += 1
        result.manipulated = test.count
        test.commit()
        train.commit()
    except BaseException:
        train.abort()
        test.abort()
        raise
    finally:
        pending_negatives.unlink(missing_ok=True)
    tests_path = dest / TEST_DATASETS
    tests: dict[str, str] = {}
    if tests_path.is_file():
        try:
            loaded = json.loads(tests_path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                tests = {str(k): str(v) for k, v in loaded.items()}
        except json.JSONDecodeError:
            tests = {}
    tests[name] = str(test_path.resolve())
    atomic_write_text(tests_path, json.dumps(tests, indent=4) + "\n")
    result.files = [str(train_path), str(test_path), str(tests_path)]
    return result


def _samples(run: Path, kept: Iterable[dict[str, Any]], result: ExportResult) -> Iterator[PairRef]:
    for record in kept:
        result.manipulated += 1
        original = record.get("original")
        meta = {
            "method": record.get("method"),
            "quality": record.get("quality"),
            "parsed_instruction": record.get("parsed_instruction"),
            "width": record.get("width"),
            "height": record.get("height"),
            "source": record.get("source"),
            "annotation_index": record.get("index"),
        }
        if record.get("faithfulness"):
            meta["faithfulness"] = record["faithfulness"]
        yield PairRef(
            id=str(record["id"]),
            original=Path(original) if original and Path(original).is_file() else None,
            edited=Path(record["edited"]),
            instruction=record.get("instruction"),
            mask=run / record["mask"],
            meta=meta,
        )


def export_webdataset(
    run: str | Path,
    dest: str | Path,
    *,
    min_quality: float | None = None,
    metric: QualityMetric = DEFAULT_QUALITY_METRIC,
    max_per_shard: int = 1000,
    prefix: str = "shard",
    overwrite: bool = False,
    exclude_unfaithful: bool = False,
) -> ExportResult:
    """Write the selected pairs as WebDataset shards ``<prefix>-000000.tar``, ... in
    ``dest`` (streamed: one shard in memory at a time)."""
    from ..data.webdataset_writer import write_webdataset_shards

    run = Path(run)
    result = ExportResult()
    kept = selected_records(
        run,
        min_quality=min_quality,
        metric=metric,
        result=result,
        exclude_unfaithful=exclude_unfaithful,
    )
    shards = write_webdataset_shards(
        _samples(run, kept, result),
        dest,
        max_per_shard=max_per_shard,
        prefix=prefix,
        overwrite=overwrite,
    )
    result.files = [str(s) for s in shards]
    return result
