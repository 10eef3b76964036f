"""The ``opensdi`` format: OpenSDI's test set, one of the SIGMA paper's evaluation
benchmarks, as the Hugging Face parquet dataset (``docs/benchmarks.md`` gives the
sources)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..images import EncodedImage
from ..io import iter_parquet_rows
from ..pair import PairRef
from .base import UniqueIds, register_format
from .parquet import (
    file_problem,
    first_file_has_columns,
    required_image,
    row_source,
    split_files,
)

OPENSDI_COLUMNS = ("key", "image", "mask", "label")


@dataclass(frozen=True)
class _RowAddress:
    file: Path
    row_group: int
    row_in_group: int
    key: str


class _ParquetCellFetcher:
    """Reads single cells by (file, row group, row), keeping a couple of row groups'
    column in memory: originals are looked up out of order, and re-reading a whole row
    group per lookup would read the dataset many times over."""

    def __init__(self, column: str, cached_groups: int = 2) -> None:
        self.column = column
        self.cached_groups = cached_groups
        self._cache: OrderedDict[tuple[Path, int], list[Any]] = OrderedDict()
        self._files: dict[Path, Any] = {}

    def get(self, address: _RowAddress) -> Any:
        import pyarrow.parquet as pq

        slot = (address.file, address.row_group)
        if slot not in self._cache:
            parquet = self._files.setdefault(address.file, pq.ParquetFile(address.file))
            column = parquet.read_row_group(address.row_group, columns=[self.column])
            self._cache[slot] = column.column(0).to_pylist()
            while len(self._cache) > self.cached_groups:
                self._cache.popitem(last=False)
        self._cache.move_to_end(slot)
        return self._cache[slot][address.row_in_group]


def _opensdi_parts(key: str) -> tuple[str, str, str, str]:
    """``(scope, generator, kind, stem)`` of a key such as
    ``partial/sd15/fake/000651821.jpg``; missing parts are empty strings."""
    parts = PurePosixPath(key).parts
    stem = PurePosixPath(key).stem
    scope = parts[0] if len(parts) >= 4 else ""
    generator = parts[-3] if len(parts) >= 3 else ""
    kind = parts[-2] if len(parts) >= 2 else ""
    return scope, generator, kind, stem


def _is_fake(label: Any, kind: str) -> bool:
    if isinstance(label, str):
        return label.strip().lower() == "fake"
    if label is None:
        return kind == "fake"
    return int(label) == 1


def iter_opensdi(
    path: Path,
    *,
    split: str | None = None,
    original_dir: Path | None = None,
    include_full: bool = False,
) -> Iterator[PairRef]:
    """OpenSDI's test set (Wang et al., CVPR 2025) as the Hugging Face dataset
    ``nebula/OpenSDI_test`` (training set: ``nebula/OpenSDI_train``).

    Layout: ``path`` is the dataset folder (every ``*.parquet`` below it; shards are
    ``data/<split>-NNNNN-of-NNNNN.parquet`` with one split per generator: sd15, sd2,
    sdxl, sd3, flux) or one file; ``split`` keeps one generator's shards. Columns::

        key    string   e.g. partial/sd15/fake/000651821.jpg
        image  image    {"bytes", "path"}
        mask   image    white = generated, may be null
        label  class    0 = real, 1 = fake

    OpenSDI has no instructions (``instruction`` is None) and no explicit original.
    Pairs are formed, as our documented assumption, for the local edits
    (``partial/.../fake/`` keys): the original is the real row whose file stem equals
    the fake's (same generator preferred), else ``original_dir/<stem>.*`` (e.g. the
    megalith-10m source photos) when given. A fake with no original found still gets a
    ref, with ``original=None``: ``load_pair`` reports "no original image given" unless
    called with ``require_original=False``. Fully generated images (other fake keys)
    have no original at all and are skipped unless ``include_full``. Real rows serve
    only as originals. A first pass reads only the ``key`` and ``label`` columns to
    index the real rows; images are read batch by batch. Ids are
    ``opensdi_<key with / as _, no extension>``.
    """
    ids = UniqueIds()
    files = split_files(Path(path), split)
    if not files:
        yield PairRef.invalid("opensdi", f"no parquet files found under {path}", str(path))
        return
    usable: list[Path] = []
    for file in files:
        why = file_problem(file, OPENSDI_COLUMNS)
        if why:
            yield ids.check(
                PairRef.invalid(f"opensdi_file_{file.stem}", f"{file.name} {why}", str(file))
            )
        else:
            usable.append(file)
    reals = _index_opensdi_reals(usable)
    fetch_real = _ParquetCellFetcher("image")
    for file in usable:
        for row, record in iter_parquet_rows(file, list(OPENSDI_COLUMNS)):
            ref = _opensdi_ref(file, row, record, reals, fetch_real, original_dir, include_full)
            if ref is not None:
                yield ids.check(ref)


def _index_opensdi_reals(files: Iterable[Path]) -> dict[str, list[_RowAddress]]:
    import pyarrow.parquet as pq

    reals: dict[str, list[_RowAddress]] = {}
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=["key", "label"])
            keys, labels = table.column("key").to_pylist(), table.column("label").to_pylist()
            for index, (key, label) in enumerate(zip(keys, labels, strict=True)):
                if not key:
                    continue
                _, _, kind, stem = _opensdi_parts(key)
                if not _is_fake(label, kind):
                    reals.setdefault(stem, []).append(_RowAddress(file, group, index, key))
    return reals


def _opensdi_ref(
    file: Path,
    row: int,
    record: dict[str, Any],
    reals: dict[str, list[_RowAddress]],
    fetch_real: _ParquetCellFetcher,
    original_dir: Path | None,
    include_full: bool,
) -> PairRef | None:
    source = row_source(file, row)
    key = record.get("key")
    if not key:
        return PairRef.invalid(f"opensdi_{file.stem}_row{row}", "key is empty", source)
    scope, generator, kind, stem = _opensdi_parts(key)
    item_id = "opensdi_" + os.path.splitext(key)[0].replace("/", "_")
    if not _is_fake(record.get("label"), kind):
        return None
    is_local_edit = scope == "partial"
    if not is_local_edit and not include_full:
        return None
    edited, why = required_image(record.get("image"), file, row, "image")
    if edited is None:
        return PairRef.invalid(item_id, why, source)
    mask, why = required_image(record.get("mask"), file, row, "mask")
    if mask is None:
        return PairRef.invalid(item_id, why, source)
    original: EncodedImage | Path | None = None
    original_key = None
    if is_local_edit:
        candidates = reals.get(stem, [])
        same_generator = [c for c in candidates if generator in PurePosixPath(c.key).parts]
        chosen = (same_generator or candidates or [None])[0]
        if chosen is not None:
            original, _ = required_image(fetch_real.get(chosen), chosen.file, -1, "image")
            if original is not None:
                original = EncodedImage(original.data, name=f"{chosen.file.name} key {chosen.key}")
                original_key = chosen.key
        if original is None and original_dir is not None:
            matches = sorted(Path(original_dir).glob(f"{stem}.*"))
            original = matches[0] if matches else None
    return PairRef(
        id=item_id,
        original=original,
        edited=edited,
        instruction=None,
        mask=mask,
        source=source,
        meta={
            "benchmark": "opensdi",
            "key": key,
            "generator": generator,
            "local_edit": is_local_edit,
            "original_key": original_key,
        },
    )


def looks_like_opensdi(path: Path) -> bool:
    return first_file_has_columns(Path(path), OPENSDI_COLUMNS)


register_format("opensdi", iter_opensdi, looks_like_opensdi)
