"""The ``imdlbenco`` format: IMDL-BenCo's JsonDataset list."""

from __future__ import annotations

import json

import pytest

from sigma_iml.data.formats.imdlbenco import iter_imdlbenco
from sigma_iml.data.pair import load_pair
from sigma_iml.errors import DataError, ManifestError


def test_imdlbenco_json_with_negative_and_original(tmp_path, make_dataset):
    manifest = make_dataset(n=2)
    root = manifest.parent
    listing = [
        [
            str(root / "edited" / "pair000.png"),
            str(root / "mask" / "pair000.png"),
            str(root / "original" / "pair000.png"),
        ],
        ["edited/pair001.png", "Negative"],
        ["only-one"],
    ]
    path = root / "bench.json"
    path.write_text(json.dumps(listing))
    first, negative, broken = iter_imdlbenco(path, originals=root / "original")
    assert load_pair(first).mask.any()
    pair = load_pair(negative)
    assert negative.negative and not pair.mask.any() and pair.mask.shape == (40, 48)
    assert broken.problem and "row must be" in broken.problem
    # Without an originals folder a two-element row has no original: a named failure.
    _, no_original, _ = iter_imdlbenco(path)
    with pytest.raises(DataError, match="gives no original image"):
        load_pair(no_original)


def test_imdlbenco_json_not_a_list(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1}')
    with pytest.raises(ManifestError, match="expected a JSON list"):
        list(iter_imdlbenco(path))
