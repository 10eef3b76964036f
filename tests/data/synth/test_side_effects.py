"""``make-pairs --side-effects P``: unasked edits elsewhere, with exact split masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigma_iml.data.synth import make_item, make_pairs
from sigma_iml.data.synth.side_effects import SIDE_EFFECT_KINDS, SIDE_EFFECT_MARGIN
from sigma_iml.errors import ConfigError

SIZE = (128, 96)


def test_side_effects_are_exact_disjoint_and_leave_the_intended_edit_alone():
    kinds_seen = set()
    for index in range(8):
        plain = make_item(index, 3, size=SIZE)
        item = make_item(index, 3, size=SIZE, side_effects=1.0)
        assert np.array_equal(item.intended_mask, plain.mask)  # the asked-for edit is unchanged
        assert np.array_equal(item.mask, item.intended_mask | item.side_effect_mask)
        changed = np.any(item.edited != item.original, axis=2)
        if item.record["edit_type"] == "global":
            assert item.record["side_effect"] is None and not item.side_effect_mask.any()
            continue
        side = item.record["side_effect"]
        assert side is not None and side["kind"] in SIDE_EFFECT_KINDS
        kinds_seen.add(side["kind"])
        # Exact mask rule: changed pixels are exactly the union (noise-free).
        assert np.array_equal(changed, item.mask)
        assert item.side_effect_mask.any()
        # The two regions keep their distance.
        ys, xs = np.nonzero(item.side_effect_mask)
        iy, ix = np.nonzero(item.intended_mask)
        gap = np.min(np.hypot(ys[:, None] - iy[None], xs[:, None] - ix[None]))
        assert gap > SIDE_EFFECT_MARGIN - 1
    assert len(kinds_seen) >= 2


def test_probability_and_determinism():
    def flags(p):
        return [
            make_item(i, 0, size=SIZE, kinds=("add",), side_effects=p).record["side_effect"]
            is not None
            for i in range(12)
        ]

    assert not any(flags(0.0))
    half, most = flags(0.5), flags(0.9)
    assert 0 < sum(half) < 12
    assert all(m or not h for h, m in zip(half, most))  # a larger P only adds side effects
    a = make_item(5, 0, size=SIZE, side_effects=0.7)
    b = make_item(5, 0, size=SIZE, side_effects=0.7)
    assert np.array_equal(a.edited, b.edited) and a.record == b.record
    # Off (None) is the generator as it was: no split, no new record keys.
    assert "side_effect" not in make_item(5, 0, size=SIZE).record
    with pytest.raises(ConfigError, match="probability"):
        make_item(0, 0, side_effects=1.5)


def test_manifest_carries_intended_side_effect_and_union_masks(tmp_path):
    from PIL import Image

    manifest = make_pairs(tmp_path, 4, seed=1, size=SIZE, side_effects=1.0)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for row in rows:
        masks = {
            key: np.asarray(Image.open(tmp_path / row[key])) > 127
            for key in ("mask", "intended_mask", "side_effect_mask")
        }
        assert np.array_equal(masks["mask"], masks["intended_mask"] | masks["side_effect_mask"])
        assert (row["side_effect"] is None) == (not masks["side_effect_mask"].any())
    plain = make_pairs(tmp_path / "plain", 1, seed=1, size=SIZE)
    assert "intended_mask" not in json.loads(plain.read_text())
