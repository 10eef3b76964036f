"""The ``deal300k`` format: DEAL-300K in its published layout, on a tiny generated copy
(benchmark_fixtures.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sigma_iml.data.formats.deal300k import iter_deal300k

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "benchmark_fixtures", Path(__file__).with_name("benchmark_fixtures.py")
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def test_deal300k_assumed_layout(tmp_path):
    expected = fixtures.make_deal300k(tmp_path)
    refs = list(iter_deal300k(tmp_path, split="test"))
    assert [r.id for r in fixtures.valid(refs)] == [e["id"] for e in expected]
    fixtures.check_decoded(refs, expected)
    ref = fixtures.valid(refs)[0]
    assert ref.original == tmp_path / "test" / "000000000009.jpg"
    assert ref.mask == tmp_path / "label" / "000000000009_qwen120.png"
    [missing] = [r for r in refs if r.problem]
    assert (
        "000000000024_qwen120.jpg" in missing.problem and "checkpoint-120_test" in missing.problem
    )


def test_deal300k_original_dir_takes_precedence(tmp_path):
    fixtures.make_deal300k(tmp_path)
    coco = tmp_path / "coco"
    coco.mkdir()
    (coco / "000000000009.jpg").write_bytes((tmp_path / "test" / "000000000009.jpg").read_bytes())
    ref = next(iter(iter_deal300k(tmp_path, original_dir=coco)))
    assert ref.original == coco / "000000000009.jpg"
