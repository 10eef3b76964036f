"""``export --format hf``: parquet shards and a dataset card that ``datasets`` loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from sigma_iml.annotation.hf_export import HF_FEATURES
from sigma_iml.annotation.runner import annotate
from sigma_iml.cli.app import app
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.data.images import load_mask
from sigma_iml.methods import build_method

datasets = pytest.importorskip("datasets")


def _run_with_a_parsed_and_an_empty_pair(make_dataset, tmp_path):
    manifest = make_dataset(n=5, size=(48, 40))
    run = tmp_path / "run"
    annotate(iter_manifest(manifest), build_method("pixdiff-otsu"), run, progress=False)
    records_path = run / "shards" / "00000" / "records.jsonl"
    records = [json.loads(line) for line in records_path.read_text().splitlines()]
    # A newer record of pair 1 with a parsed instruction, and of pair 2 with an empty
    # prediction (no QES): the export reads the newest record of each pair.
    parsed = dict(
        records[1],
        parsed_instruction={
            "original_concept": "cat",
            "edited_concept": "dog",
            "action": "replace",
        },
    )
    empty = dict(records[2], quality={"qes": None, "confidence": None, "area": 0.0})
    with records_path.open("a") as handle:
        for record in (parsed, empty):
            handle.write(json.dumps(record) + "\n")
    return run, records


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_hf_export_loads_with_datasets(make_dataset, tmp_path):
    run, records = _run_with_a_parsed_and_an_empty_pair(make_dataset, tmp_path)
    out = tmp_path / "hf"
    result = CliRunner().invoke(
        app, ["export", "--run", str(run), "--format", "hf", "--out", str(out), "--shard-size", "2"]
    )
    assert result.exit_code == 0, result.output
    shards = sorted((out / "data").glob("*.parquet"))
    assert [p.name for p in shards] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]

    ds = datasets.load_dataset("parquet", data_dir=str(out), split="train")
    assert list(ds.features) == list(HF_FEATURES)
    for column in ("original", "edited", "mask"):
        assert isinstance(ds.features[column], datasets.Image)
    assert ds["id"] == [r["id"] for r in records]
    for row, record in zip(ds, records):
        mask = np.asarray(row["mask"].convert("L")) > 127
        assert np.array_equal(mask, load_mask(run / record["mask"]))
        assert row["edited"].size == (48, 40) and row["original"].size == (48, 40)
        assert row["instruction"] == record["instruction"]
        assert row["source_corpus"] == "manifest.jsonl"
        assert (row["width"], row["height"]) == (48, 40)
    assert ds[1]["parsed_instruction"] == {
        "original_concept": "cat",
        "edited_concept": "dog",
        "action": "replace",
    }
    assert ds[0]["parsed_instruction"] is None
    # The peer's convention: a map that predicts nothing has QES 0.
    assert ds[2]["quality"]["qes"] == 0.0 and ds[2]["quality"]["confidence"] is None

    card = (out / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["configs"][0]["data_files"][0]["path"] == "data/train-*"
    assert [f["name"] for f in meta["dataset_info"]["features"]] == list(HF_FEATURES)
    assert meta["dataset_info"]["splits"][0]["num_examples"] == 5
    assert "license" not in meta and "# license:" in card
    assert "| manifest.jsonl | 5 |" in card
    assert "| replace | 1 |" in card and "| unparsed | 4 |" in card
    for image in ("mask_area.png", "quality.png"):
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({image})" in card
    # The card's own config loads too (what the Hub viewer reads).
    assert len(datasets.load_dataset(str(out), split="train")) == 5


def test_hf_export_applies_min_quality_with_empty_maps_at_zero(make_dataset, tmp_path):
    run, records = _run_with_a_parsed_and_an_empty_pair(make_dataset, tmp_path)
    out = tmp_path / "hf"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--run",
            str(run),
            "--format",
            "hf",
            "--out",
            str(out),
            "--min-quality",
            "0.5",
            "--quality-metric",
            "qes",
            "--corpus",
            "AnyEdit",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "exported 4 pairs; 1 below quality" in result.output
    ds = datasets.load_dataset("parquet", data_dir=str(out), split="train")
    assert records[2]["id"] not in ds["id"] and len(ds) == 4
    assert set(ds["source_corpus"]) == {"AnyEdit"}
    card = (out / "README.md").read_text()
    assert "`--min-quality 0.5` on `qes`: 4 pairs kept, 1 left out." in card
    assert "| AnyEdit | 4 |" in card
