"""The ``autosplice`` format: AutoSplice in its published layout, on a tiny generated copy
(benchmark_fixtures.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sigma_iml.data.formats.autosplice import iter_autosplice

# Loaded by path so the tests work whether or not tests/ becomes a package.
_spec = importlib.util.spec_from_file_location(
    "benchmark_fixtures", Path(__file__).with_name("benchmark_fixtures.py")
)
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def test_autosplice_pairs_forged_images_with_authentic_mask_and_caption(tmp_path):
    expected = fixtures.make_autosplice(tmp_path)
    refs = list(iter_autosplice(tmp_path))
    assert [r.id for r in fixtures.valid(refs)] == [e["id"] for e in expected]
    fixtures.check_decoded(refs, expected)
    ref = fixtures.valid(refs)[0]
    assert ref.original == tmp_path / "Authentic" / "101.jpg"
    assert ref.mask == tmp_path / "Mask" / "101_mask.png"


def test_autosplice_quality_and_instruction_options(tmp_path):
    fixtures.make_autosplice(tmp_path)
    refs = fixtures.valid(iter_autosplice(tmp_path, quality=75, instruction="user_term"))
    assert refs[0].id == "autosplice_q75_101_0" and refs[0].instruction == "tram"
    assert refs[0].edited == tmp_path / "Forged_JPEG75" / "101_0.jpg"
    loose = list(iter_autosplice(tmp_path, require_instruction=False))
    assert next(r for r in loose if r.id == "autosplice_q100_103_0").instruction is None


def test_autosplice_names_the_bad_files(tmp_path):
    fixtures.make_autosplice(tmp_path)
    problems = {r.id: r.problem for r in iter_autosplice(tmp_path) if r.problem}
    assert "badname.jpg" in problems["autosplice_q100_badname"]
    assert "103_0.jpg" in problems["autosplice_q100_103_0"]
