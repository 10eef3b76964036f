"""The ``opensdi`` format: OpenSDI in its published layout, on a tiny generated copy
(benchmark_fixtures.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from sigma_iml.data.formats.opensdi import iter_opensdi
from sigma_iml.data.pair import load_pair
from sigma_iml.errors import DataError

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "benchmark_fixtures", Path(__file__).with_name("benchmark_fixtures.py")
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def test_opensdi_pairs_local_edits_with_their_real_photo(tmp_path):
    expected = fixtures.make_opensdi(tmp_path)
    refs = list(iter_opensdi(tmp_path))
    assert [r.id for r in refs[:3]] == [e["id"] for e in expected]
    assert all(r.instruction is None for r in refs)
    for item in expected:
        ref = next(r for r in refs if r.id == item["id"])
        if item["original"] is None:
            assert ref.original is None
            with pytest.raises(DataError, match="no original image given"):
                load_pair(ref)
            pair = load_pair(ref, require_original=False)
        else:
            pair = load_pair(ref)
            np.testing.assert_array_equal(pair.original, item["original"])
        np.testing.assert_array_equal(pair.mask, item["mask"])
    [bad] = [r for r in refs if r.problem]
    assert bad.problem == "column mask is empty" and bad.source.endswith(" row 4")


def test_opensdi_full_synthesis_only_on_request(tmp_path):
    fixtures.make_opensdi(tmp_path)
    assert not any("full" in r.id for r in iter_opensdi(tmp_path))
    full = [r for r in iter_opensdi(tmp_path, include_full=True) if "full" in r.id]
    assert [r.id for r in full] == ["opensdi_full_sd15_fake_000000008"] and full[0].original is None
    assert load_pair(full[0], require_original=False).mask.all()
