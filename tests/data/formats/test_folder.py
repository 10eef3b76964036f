"""The ``folder`` format: original/, edited/, mask/ paired by file stem."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from sigma_iml.data.formats.folder import iter_folder
from sigma_iml.data.pair import load_pair


def _write_folder(root, stems, rng):
    for folder in ("original", "edited", "mask"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        for folder in ("original", "edited"):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                root / folder / f"{stem}.png"
            )


def test_folder_pairs_by_stem_not_by_listing_order(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    _write_folder(root, ["b", "a", "c"], rng)
    # A stray file in original/ would shift a sorted-listing pairing by one.
    Image.new("RGB", (8, 8)).save(root / "original" / "0stray.png")
    (root / "original" / ".DS_Store").write_bytes(b"junk")
    (root / "edited" / "notes.txt").write_text("not an image")
    (root / "original" / "c.png").rename(root / "original" / "c.jpg")  # other extension still pairs
    Image.new("L", (8, 8), 255).save(root / "mask" / "a_mask.png")
    Image.new("L", (8, 8), 0).save(root / "mask" / "b.png")
    (root / "instructions.jsonl").write_text(
        json.dumps({"id": "a", "instruction": "add a hat"}) + "\n"
    )
    refs = list(iter_folder(root))
    assert [r.id for r in refs] == ["a", "b", "c"]
    by_id = {r.id: r for r in refs}
    assert by_id["a"].original.name == "a.png" and by_id["c"].original.name == "c.jpg"
    assert by_id["a"].mask.name == "a_mask.png" and by_id["c"].mask is None
    assert by_id["a"].instruction == "add a hat" and by_id["b"].instruction is None
    assert load_pair(by_id["a"]).mask.all()


def test_folder_edited_without_original_is_a_named_failure(tmp_path):
    root = tmp_path / "folder"
    _write_folder(root, ["a"], np.random.default_rng(0))
    Image.new("RGB", (8, 8)).save(root / "edited" / "orphan.png")
    refs = {r.id: r for r in iter_folder(root)}
    assert refs["orphan"].problem and "no original image named orphan" in refs["orphan"].problem
