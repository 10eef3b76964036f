"""Symbolic links out of the dataset folder: refused by default, read when allowed."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from sigma_iml.data.pair import load_pair
from sigma_iml.data.readers import open_dataset
from sigma_iml.errors import DataError


def _linked_dataset(tmp_path):
    """A folder dataset and a manifest whose pair ``x`` has its edited image (a file
    link) and its original (inside a linked folder) outside the dataset folder."""
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 0, 0)).save(outside / "secret.png")
    Image.new("RGB", (8, 8), (0, 0, 0)).save(outside / "folder" / "x.png")
    root = tmp_path / "data"
    for sub in ("original", "edited"):
        (root / sub).mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "original" / "y.png")
    Image.new("RGB", (8, 8)).save(root / "edited" / "y.png")
    Image.new("RGB", (8, 8)).save(root / "original" / "x.png")
    os.symlink(outside / "secret.png", root / "edited" / "x.png")
    os.symlink(outside / "folder", root / "linked")
    rows = [
        {"id": "x", "original": "linked/x.png", "edited": "edited/y.png"},
        {"id": "y", "original": "original/y.png", "edited": "edited/y.png"},
    ]
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, manifest


@pytest.mark.parametrize("fmt", ["manifest", "folder"])
def test_links_out_of_the_dataset_are_refused_by_default(tmp_path, fmt):
    root, _ = _linked_dataset(tmp_path)
    refs = {r.id: r for r in open_dataset(root, format=fmt)}
    assert refs["y"].problem is None
    bad = refs["x"]
    assert bad.problem is not None and "symbolic link" in bad.problem
    assert "--allow-links" in bad.problem and str(tmp_path / "outside") in bad.problem
    with pytest.raises(DataError, match="outside the dataset folder"):
        load_pair(bad)


@pytest.mark.parametrize("fmt", ["manifest", "folder"])
def test_links_are_read_when_allowed(tmp_path, fmt):
    root, _ = _linked_dataset(tmp_path)
    refs = {r.id: r for r in open_dataset(root, format=fmt, allow_links=True)}
    assert refs["x"].problem is None
    assert load_pair(refs["x"]).id == "x"


def test_a_link_that_stays_inside_is_fine(tmp_path):
    root, manifest = _linked_dataset(tmp_path)
    os.symlink(root / "original" / "y.png", root / "original" / "z.png")
    manifest.write_text(
        json.dumps({"id": "z", "original": "original/z.png", "edited": "edited/y.png"}) + "\n"
    )
    (ref,) = open_dataset(manifest)
    assert ref.problem is None
