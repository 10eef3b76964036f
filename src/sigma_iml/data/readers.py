"""Opening datasets: the public entry to the dataset formats of :mod:`sigma_iml.data.formats`.

:func:`open_dataset` streams :class:`~sigma_iml.data.pair.PairRef` items lazily from a
dataset in any registered format, named or detected by :func:`detect_format`;
:data:`DATASET_FORMATS` lists the formats (``sigma-iml ... --format NAME``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError, ManifestError
from .formats import DATASET_FORMATS, formats_in_detection_order
from .formats.base import link_leaves
from .io import files_of_pattern, is_path_pattern
from .pair import PairRef

__all__ = [
    "DATASET_FORMATS",
    "count_pairs",
    "dataset_identity",
    "dataset_name",
    "detect_format",
    "open_dataset",
    "reader_options",
    "take",
]


def _known_names() -> str:
    return ", ".join(f.name for f in formats_in_detection_order())


def detect_format(path: str | os.PathLike) -> str:
    """The name of the first format, in detection order
    (:data:`sigma_iml.data.formats.DETECTION_ORDER`), whose sniffer accepts ``path``.

    ``path`` may be a glob (``data/train-*.parquet``) or a brace pattern
    (``shard-{000000..000099}.tar``); it must match at least one file."""
    target = Path(path)
    if is_path_pattern(os.fspath(path)):
        if not files_of_pattern(os.fspath(path)):
            raise ManifestError("no file matches this pattern", source=os.fspath(path))
    elif not target.exists():
        raise ManifestError("dataset path does not exist", source=str(target))
    for fmt in formats_in_detection_order():
        if fmt.sniff is not None and fmt.sniff(target):
            return fmt.name
    raise ManifestError(
        f"cannot tell the dataset format; pass one of: {_known_names()}", source=str(target)
    )


def open_dataset(
    path: str | os.PathLike,
    format: str | None = None,
    *,
    allow_links: bool = False,
    **options: Any,
) -> Iterator[PairRef]:
    """Stream the pairs of the dataset at ``path`` (format sniffed unless given).

    Files of formats that keep them in the dataset folder must really be there: a
    symbolic link that leads out of the folder (the folder of ``path`` when it is a
    file, ``root=`` when given) makes its pair invalid, named, unless ``allow_links``
    (``--allow-links``). Paths are checked lazily, as the pairs are read."""
    name = format or detect_format(path)
    if name not in DATASET_FORMATS:
        raise ConfigError(f"unknown dataset format {name!r}; known: {_known_names()}")
    dataset = DATASET_FORMATS[name]
    refs = dataset.read(Path(path), **options)
    if allow_links or not dataset.files_inside:
        return refs
    target = Path(options.get("root") or path)
    folder = target if target.is_dir() else target.parent
    return _refuse_links_out(refs, folder.resolve())


def _refuse_links_out(refs: Iterable[PairRef], real_root: Path) -> Iterator[PairRef]:
    """``refs``, each one with a file that a link takes out of ``real_root`` made
    invalid (see :func:`~sigma_iml.data.formats.base.link_leaves`)."""
    for ref in refs:
        if ref.problem is None:
            for field in ("original", "edited", "mask"):
                value = getattr(ref, field)
                if not isinstance(value, (str, os.PathLike)):
                    continue  # encoded bytes or decoded images: no file to follow
                why = link_leaves(real_root, Path(value))
                if why is not None:
                    ref = PairRef.invalid(ref.id, f"field {field!r}: {why}", ref.source)
                    break
        yield ref


def reader_options(
    format: str | None,
    columns: str | None = None,
    keys: str | None = None,
    originals: str | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """``(format, options)`` for :func:`open_dataset` from the command line's
    ``--format``, ``--columns`` (parquet: a preset or a ``role=column`` spec),
    ``--keys`` (webdataset: a ``role=name`` spec) and ``--originals`` (brgen: where the
    user's copies of its real images are). Each implies its format; naming another
    format with it is an error."""
    options: dict[str, Any] = {}
    implied = []
    if originals:
        options["originals"] = originals
        implied.append(("--originals", "brgen"))
    if columns:
        options["columns"] = columns
        implied.append(("--columns", "parquet"))
    if keys:
        options["keys"] = keys
        implied.append(("--keys", "webdataset"))
    for option, name in implied:
        if format is None:
            format = name
        elif format != name:
            raise ConfigError(f"{option} applies to the {name} format, not to --format {format}")
    return format, options


def count_pairs(path: str | os.PathLike, format: str | None = None, **options: Any) -> int | None:
    """How many items :func:`open_dataset` will yield, where that is cheap to know (a
    manifest's rows, parquet footers); ``None`` otherwise or when counting fails (the
    read itself then reports the problem)."""
    try:
        name = format or detect_format(path)
        counter = DATASET_FORMATS[name].count if name in DATASET_FORMATS else None
        return None if counter is None else int(counter(Path(path), **options))
    except (DataError, ConfigError, OSError, ValueError):
        return None


def dataset_identity(
    path: str | os.PathLike, format: str | None = None, **options: Any
) -> dict[str, Any]:
    """What names a dataset in a run's ``run.json``: its absolute path (a pattern stays
    a pattern), the format and the reader options given as text (``columns``,
    ``keys``)."""
    text = os.fspath(path)
    location = os.path.abspath(text) if is_path_pattern(text) else str(Path(text).resolve())
    identity: dict[str, Any] = {"path": location, "format": format or detect_format(path)}
    for key, value in sorted(options.items()):
        if value is not None:
            identity[key] = value if isinstance(value, (str, int, float, bool)) else repr(value)
    return identity


def dataset_name(path: str | os.PathLike) -> str:
    """A short name for result tables: the dataset folder's name (a pattern's folder)."""
    if is_path_pattern(os.fspath(path)):
        return Path(os.path.abspath(os.fspath(path))).parent.name
    target = Path(path).resolve()
    if target.is_file():
        return target.parent.name if target.stem in ("manifest", "table") else target.stem
    return target.name


def take(refs: Iterable[PairRef], limit: int | None) -> Iterator[PairRef]:
    """The first ``limit`` refs (all when ``limit`` is None)."""
    for index, ref in enumerate(refs):
        if limit is not None and index >= limit:
            return
        yield ref
