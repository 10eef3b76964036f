"""A Hugging Face dataset of an annotation run: parquet shards and a dataset card.

:func:`export_hf` writes into ``dest``:

- ``data/train-00000-of-0000N.parquet`` — one row per kept pair: ``id``, ``original``,
  ``edited``, ``mask`` (images as ``{"bytes", "path"}`` structs, as ``datasets`` writes its
  ``Image`` feature; the original is null when it is not on disk), ``instruction``,
  ``parsed_instruction`` (``{original_concept, edited_concept, action}``), ``quality``
  (``{qes, confidence, area}``), ``method``, ``width``, ``height``, ``source_corpus`` and
  ``source`` (where the pair was listed). The ``datasets`` feature types ride in the
  parquet schema metadata (key ``huggingface``), so ``datasets.load_dataset("parquet",
  data_dir=dest)`` decodes the images;
- ``README.md`` — the dataset card: YAML front matter (``configs``, ``dataset_info`` with
  the features; the licence left for the user), counts per source corpus and per action,
  the filter applied, and two histograms beside it, ``mask_area.png`` and
  ``quality.png``.

QES follows the peer annotator's convention (docs/annotation.md): a map that predicts
nothing scores 0, so ``quality.qes`` is 0.0 where the record has none, and the QES filter
sees 0 for it. Pairs are kept as :func:`.export.selected_records` keeps them otherwise
(``ok``, in input order, newest record per pair).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import atomic_write_bytes, atomic_write_text
from ..errors import ConfigError
from .export import ExportResult, selected_records
from .quality import DEFAULT_QUALITY_METRIC, QualityMetric, passes

DATA = "data"
SPLIT = "train"
IMAGE_COLUMNS = ("original", "edited", "mask")
TUPLE_KEYS = ("original_concept", "edited_concept", "action")
QUALITY_KEYS = ("qes", "confidence", "area")
#: Rows per pyarrow write: each row carries three images, so batches stay small.
WRITE_BATCH = 64

#: The ``datasets`` features, in its JSON form (``Features.to_dict()``).
HF_FEATURES: dict[str, Any] = {
    "id": {"dtype": "string", "_type": "Value"},
    "original": {"_type": "Image"},
    "edited": {"_type": "Image"},
    "mask": {"_type": "Image"},
    "instruction": {"dtype": "string", "_type": "Value"},
    "parsed_instruction": {k: {"dtype": "string", "_type": "Value"} for k in TUPLE_KEYS},
    "quality": {k: {"dtype": "float64", "_type": "Value"} for k in QUALITY_KEYS},
    "method": {"dtype": "string", "_type": "Value"},
    "width": {"dtype": "int32", "_type": "Value"},
    "height": {"dtype": "int32", "_type": "Value"},
    "source_corpus": {"dtype": "string", "_type": "Value"},
    "source": {"dtype": "string", "_type": "Value"},
}


def _schema():
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [
        ("id", pa.string()),
        *((name, image) for name in IMAGE_COLUMNS),
        ("instruction", pa.string()),
        ("parsed_instruction", pa.struct([(k, pa.string()) for k in TUPLE_KEYS])),
        ("quality", pa.struct([(k, pa.float64()) for k in QUALITY_KEYS])),
        ("method", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("source_corpus", pa.string()),
        ("source", pa.string()),
    ]
    metadata = {"huggingface": json.dumps({"info": {"features": HF_FEATURES}})}
    return pa.schema(fields, metadata=metadata)


def _yaml_features() -> list[dict[str, Any]]:
    """``dataset_info.features`` as the Hub's card metadata spells it."""
    out: list[dict[str, Any]] = []
    for name, feature in HF_FEATURES.items():
        if feature.get("_type") == "Image":
            out.append({"name": name, "dtype": "image"})
        elif "_type" in feature:
            out.append({"name": name, "dtype": feature["dtype"]})
        else:
            out.append(
                {
                    "name": name,
                    "struct": [{"name": k, "dtype": v["dtype"]} for k, v in feature.items()],
                }
            )
    return out


def hf_quality(quality: dict[str, Any] | None) -> dict[str, float | None]:
    """The record's scores with the peer's QES convention: no prediction scores 0."""
    quality = quality or {}
    scores = {k: quality.get(k) for k in QUALITY_KEYS}
    if scores["qes"] is None:
        scores["qes"] = 0.0
    return scores


def source_corpus(record: dict[str, Any], corpus: str | None) -> str:
    """``corpus`` when given, else where the record was listed without its position
    (``manifest.jsonl:12`` → ``manifest.jsonl``)."""
    if corpus:
        return corpus
    source = str(record.get("source") or "")
    head, sep, tail = source.rpartition(":")
    return (head if sep and tail.isdigit() else source) or "unknown"


def _parsed_tuple(value: Any) -> dict[str, str | None] | None:
    if not isinstance(value, dict):
        return None
    return {k: (None if value.get(k) is None else str(value.get(k))) for k in TUPLE_KEYS}


def _image(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    return {"bytes": path.read_bytes(), "path": path.name}


@dataclass
class _CardStats:
    corpora: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)
    areas: list[float] = field(default_factory=list)
    qualities: dict[str, list[float]] = field(default_factory=lambda: {"qes": [], "confidence": []})
    num_bytes: int = 0


class _ShardWriter:
    """Streams rows into ``data/train-NNNNN.parquet`` shards, renamed to the
    ``-of-NNNNN`` form the Hub expects once the count is known."""

    def __init__(self, folder: Path, rows_per_shard: int):
        self.folder = folder
        self.rows_per_shard = rows_per_shard
        self.schema = _schema()
        self.paths: list[Path] = []
        self._writer = None
        self._in_shard = 0
        self._batch: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._batch.append(row)
        if (
            len(self._batch) >= WRITE_BATCH
            or self._in_shard + len(self._batch) >= self.rows_per_shard
        ):
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        while self._batch:
            if self._writer is None:
                path = self.folder / f".{SPLIT}-{len(self.paths):05d}.parquet.tmp"
                self.paths.append(path)
                self._writer = pq.ParquetWriter(str(path), self.schema)
                self._in_shard = 0
            room = self.rows_per_shard - self._in_shard
            chunk, self._batch = self._batch[:room], self._batch[room:]
            self._writer.write_table(pa.Table.from_pylist(chunk, schema=self.schema))
            self._in_shard += len(chunk)
            if self._in_shard >= self.rows_per_shard:
                self._writer.close()
                self._writer = None

    def close(self) -> list[Path]:
        self._flush()
        if self._writer is not None:
            self._writer.close()
        final = []
        for index, path in enumerate(self.paths):
            target = self.folder / f"{SPLIT}-{index:05d}-of-{len(self.paths):05d}.parquet"
            path.replace(target)
            final.append(target)
        return final


def _histogram_png(series: dict[str, list[float]], xlabel: str, title: str) -> bytes:
    """A histogram on [0, 1] per named series, drawn with matplotlib's object API on an
    Agg canvas (no global pyplot state)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3}):
        figure = Figure(figsize=(5, 3), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot(1, 1, 1)
        bins = np.linspace(0.0, 1.0, 21)
        for name, values in series.items():
            if values:
                axes.hist(
                    np.clip(values, 0.0, 1.0),
                    bins=bins,
                    alpha=0.6,
                    label=f"{name} (n={len(values)})",
                )
        axes.set_xlabel(xlabel)
        axes.set_ylabel("pairs")
        axes.set_title(title)
        if any(series.values()):
            axes.legend()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _card(
    dest: Path,
    stats: _CardStats,
    result: ExportResult,
    shards: list[Path],
    min_quality: float | None,
    metric: QualityMetric,
    name: str,
) -> str:
    import yaml

    meta = {
        "pretty_name": name,
        "task_categories": ["image-segmentation"],
        "tags": ["image-manipulation-localization", "image-editing", "sigma-iml"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": SPLIT, "path": f"{DATA}/{SPLIT}-*"}],
            }
        ],
        "dataset_info": {
            "features": _yaml_features(),
            "splits": [
                {"name": SPLIT, "num_bytes": stats.num_bytes, "num_examples": result.manipulated}
            ],
        },
    }
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    if min_quality is None:
        filter_text = "none: every pair annotated `ok` is included."
    else:
        filter_text = (
            f"`--min-quality {min_quality}` on `{metric}`: {result.manipulated} pairs kept, "
            f"{result.below_quality} left out."
        )
        if metric == "qes":
            filter_text += " QES follows the peer annotator's convention: a mask that predicts nothing scores 0."

    def table(title: str, counts: Counter) -> str:
        rows = "\n".join(f"| {key} | {value} |" for key, value in counts.most_common())
        return f"| {title} | pairs |\n|---|---|\n{rows}\n"

    return (
        "---\n"
        "# license: fill in before publishing (the source corpora's terms apply to the images)\n"
        f"{front}---\n\n"
        f"# {name}\n\n"
        "Edit masks predicted by sigma-iml (the SIGMA method) for (original, edited, "
        "instruction) pairs: which pixels an image editor semantically changed.\n\n"
        "```python\nimport datasets\n"
        f'ds = datasets.load_dataset("parquet", data_dir="{dest.name}", split="{SPLIT}")\n```\n\n'
        f"{result.manipulated} pairs in {len(shards)} parquet shard(s). Columns: "
        + ", ".join(f"`{k}`" for k in HF_FEATURES)
        + ". `mask` is a 0/255 PNG at the edited image's size; `original` is null when the "
        "annotate run did not keep it. `quality` holds the mask's quality scores "
        "(QES, mean confidence, edited area share).\n\n"
        f"## Filter\n\n{filter_text}\n\n"
        f"## Source corpora\n\n{table('source corpus', stats.corpora)}\n"
        f"## Actions\n\n{table('action', stats.actions)}\n"
        "## Mask area and quality\n\n![mask area](mask_area.png)\n\n![quality](quality.png)\n\n"
        "## Licence\n\nNot set: the images come from the source corpora above, under their "
        "terms. Fill in `license:` in the front matter before publishing.\n"
    )


def export_hf(
    run: str | Path,
    dest: str | Path,
    *,
    min_quality: float | None = None,
    metric: QualityMetric = DEFAULT_QUALITY_METRIC,
    rows_per_shard: int = 500,
    corpus: str | None = None,
    name: str | None = None,
    exclude_unfaithful: bool = False,
) -> ExportResult:
    """Write the run's kept pairs as parquet shards plus a dataset card into ``dest``;
    with ``exclude_unfaithful``, without pairs flagged by ``annotate --faithfulness``."""
    run, dest = Path(run), Path(dest)
    if rows_per_shard < 1:
        raise ConfigError("rows per shard must be at least 1")
    data = dest / DATA
    data.mkdir(parents=True, exist_ok=True)
    for old in data.glob(f"{SPLIT}-*.parquet"):
        old.unlink()
    result = ExportResult()
    stats = _CardStats()
    writer = _ShardWriter(data, rows_per_shard)
    try:
        for record in selected_records(
            run, metric=metric, result=result, exclude_unfaithful=exclude_unfaithful
        ):
            quality = hf_quality(record.get("quality"))
            if not passes(quality, min_quality, metric):
                result.below_quality += 1
                continue
            original = record.get("original")
            parsed = _parsed_tuple(record.get("parsed_instruction"))
            row = {
                "id": str(record["id"]),
                "original": _image(Path(original)) if original else None,
                "edited": _image(Path(record["edited"])),
                "mask": _image(run / record["mask"]),
                "instruction": record.get("instruction"),
                "parsed_instruction": parsed,
                "quality": quality,
                "method": record.get("method"),
                "width": record.get("width"),
                "height": record.get("height"),
                "source_corpus": source_corpus(record, corpus),
                "source": record.get("source"),
            }
            if row["edited"] is None or row["mask"] is None:
                raise ConfigError(f"pair {row['id']}: its edited image or mask is missing on disk")
            stats.num_bytes += sum(len(row[c]["bytes"]) for c in IMAGE_COLUMNS if row[c])
            stats.corpora[row["source_corpus"]] += 1
            stats.actions[(parsed or {}).get("action") or "unparsed"] += 1
            if quality["area"] is not None:
                stats.areas.append(float(quality["area"]))
            for key in stats.qualities:
                if quality[key] is not None:
                    stats.qualities[key].append(float(quality[key]))
            writer.add(row)
            result.manipulated += 1
        shards = writer.close()
    except BaseException:
        for path in writer.paths:
            path.unlink(missing_ok=True)
        raise
    atomic_write_bytes(
        dest / "mask_area.png",
        _histogram_png({"mask area": stats.areas}, "share of the image edited", "Mask area"),
    )
    atomic_write_bytes(
        dest / "quality.png",
        _histogram_png(stats.qualities, "score", "Mask quality"),
    )
    card = _card(
        dest, stats, result, shards, min_quality, metric, name or f"{run.name} (sigma-iml)"
    )
    atomic_write_text(dest / "README.md", card)
    result.files = [str(p) for p in shards] + [
        str(dest / "README.md"),
        str(dest / "mask_area.png"),
        str(dest / "quality.png"),
    ]
    return result
