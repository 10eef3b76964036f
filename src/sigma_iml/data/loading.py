"""Decoding pairs ahead of the consumer in a small thread pool.

Pillow and OpenCV release the GIL while decoding, so a few threads keep a model or a
baseline fed. Look-ahead is bounded in pairs and in decoded bytes: memory stays flat
however long the dataset and however large its images (a pair just under Pillow's pixel
limit takes about 1 GB decoded, so eight of them ahead would be 8 GB).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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


#: Decoded bytes that may wait ahead of the consumer (see :func:`iter_loaded`): 1 GiB
#: holds ~200 pairs of 1024x768 (the pair count binds first) but only one pair near
#: Pillow's 89.5-megapixel limit.
DEFAULT_LOOKAHEAD_BYTES = 1 << 30


def decoded_bytes(loaded: Loaded) -> int:
    """The memory a decoded pair holds (its arrays); 0 for a failed one."""
    pair = loaded.pair
    if pair is None:
        return 0
    arrays = (pair.original, pair.edited, pair.mask)
    return sum(int(a.nbytes) for a in arrays if a is not None)


def iter_loaded(
    refs: Iterable[PairRef],
    *,
    loader: Callable[[PairRef], Pair] = load_pair,
    workers: int = 2,
    lookahead: int = 8,
    lookahead_bytes: int = DEFAULT_LOOKAHEAD_BYTES,
) -> Iterator[Loaded]:
    """Decode ``refs`` in order with ``workers`` threads, at most ``lookahead`` pairs
    ahead, and no new pair started while the decoded pairs waiting hold
    ``lookahead_bytes`` or more. A pair's size is known only once it is decoded, so up
    to ``workers`` pairs being decoded come on top of the budget; one pair larger than
    the budget still goes through, alone. Bad items come back with ``error`` set; the
    stream goes on."""
    if workers <= 0:
        for ref in refs:
            yield _load_one(ref, loader)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sigma-decode") as pool:
        pending: deque[Future[Loaded]] = deque()

        def waiting_bytes() -> int:
            return sum(decoded_bytes(f.result()) for f in pending if f.done())

        for ref in refs:
            while pending:
                if len(pending) >= lookahead or waiting_bytes() >= lookahead_bytes:
                    yield pending.popleft().result()
                    continue
                running = [f for f in pending if not f.done()]
                if len(running) < workers:
                    break
                # Start no pair before one finishes: a queued pair's size is unknown.
                wait(running, return_when=FIRST_COMPLETED)
            pending.append(pool.submit(_load_one, ref, loader))
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
