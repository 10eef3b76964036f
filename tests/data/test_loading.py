"""Decoding ahead: order kept, failures passed on, look-ahead bounded by decoded bytes."""

from __future__ import annotations

import threading

import numpy as np

from sigma_iml.data.loading import iter_loaded
from sigma_iml.data.pair import Pair, PairRef

MB = 1 << 20


class _BigPairs:
    """A loader of pairs holding ``size`` bytes each that counts the pairs decoded and not
    yet taken by the consumer (what memory holds)."""

    def __init__(self, size: int):
        self.side = int(np.sqrt(size / 6))  # original + edited, 3 bytes a pixel each
        self.lock = threading.Lock()
        self.outstanding = 0
        self.most = 0

    def __call__(self, ref: PairRef) -> Pair:
        image = np.zeros((self.side, self.side, 3), dtype=np.uint8)
        with self.lock:
            self.outstanding += 1
            self.most = max(self.most, self.outstanding)
        return Pair(id=ref.id, original=image, edited=image.copy())

    def taken(self) -> None:
        with self.lock:
            self.outstanding -= 1


def _refs(count: int):
    return (PairRef(id=f"p{i}", original=None, edited=None) for i in range(count))


def test_lookahead_is_bounded_by_decoded_bytes():
    """Sixty 4 MB pairs with room for 50 pairs but a 10 MB budget: at most the budget's
    pairs, plus the two being decoded, plus the one handed over, are ever held."""
    loader = _BigPairs(4 * MB)
    ids = []
    for item in iter_loaded(
        _refs(60), loader=loader, workers=2, lookahead=50, lookahead_bytes=10 * MB
    ):
        ids.append(item.ref.id)
        loader.taken()
    assert ids == [f"p{i}" for i in range(60)]
    assert loader.most <= 3 + 2 + 1, loader.most


def test_a_pair_larger_than_the_budget_still_goes_through():
    loader = _BigPairs(4 * MB)
    items = list(iter_loaded(_refs(3), loader=loader, workers=2, lookahead_bytes=1))
    assert [i.ref.id for i in items] == ["p0", "p1", "p2"] and all(i.pair for i in items)


def test_ordinary_pairs_are_bounded_by_the_pair_count():
    loader = _BigPairs(64 * 1024)
    for _ in iter_loaded(_refs(40), loader=loader, workers=2, lookahead=8):
        loader.taken()
    assert loader.most <= 8 + 1
