"""Decoding pairs ahead of the consumer in a small thread pool.

Pillow and OpenCV release the GIL while decoding, so a few threads keep a model or a
baseline fed. Look-ahead is bounded: memory stays flat however long the dataset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import DataError
from .pair import Pair, PairRef, load_pair


@dataclass
class Loaded:
    """A ref with its decoded pair, or the error that decoding raised."""

    ref: PairRef
    pair: Pair | None = None
    error: DataError | None = None
    seconds: float = 0.0


def _load_one(ref: PairRef, loader: Callable[[PairRef], Pair]) -> Loaded:
    import time

    start = time.perf_counter()
    try:
        pair = loader(ref)
    except DataError as err:
        return Loaded(ref, error=err.with_item(ref.id), seconds=time.perf_counter() - start)
    return Loaded(ref, pair=pair, seconds=time.perf_counter() - start)


def iter_loaded(
    refs: Iterable[PairRef],
    *,
    loader: Callable[[PairRef], Pair] = load_pair,
    workers: int = 2,
    lookahead: int = 8,
) -> Iterator[Loaded]:
    """Decode ``refs`` in order with ``workers`` threads, at most ``lookahead`` ahead.
    Bad items come back with ``error`` set; the stream goes on."""
    if workers <= 0:
        for ref in refs:
            yield _load_one(ref, loader)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sigma-decode") as pool:
        pending: deque[Future[Loaded]] = deque()
        for ref in refs:
            pending.append(pool.submit(_load_one, ref, loader))
            if len(pending) >= lookahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
