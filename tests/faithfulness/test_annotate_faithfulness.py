"""``annotate --faithfulness`` end to end: record fields, masks beside the mask, the
summary, ``export --exclude-unfaithful``, the per-pair intent error and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sigma_iml.annotation import annotate
from sigma_iml.annotation.layout import iter_latest_records
from sigma_iml.cli import app
from sigma_iml.data.images import load_mask
from sigma_iml.data.readers import open_dataset
from sigma_iml.data.synth import make_pairs
from sigma_iml.faithfulness import FaithfulnessAnalysis
from sigma_iml.report.runs import load_run

runner = CliRunner()
# Every changed pixel (a 1-level change is 0.0039): the split is then exact.
DETECTOR = "pixdiff-fixed:tau=0.001,resolution=native"


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """10 noise-free generated pairs (every kind twice), side effects with P = 0.6."""
    out = tmp_path_factory.mktemp("pairs")
    make_pairs(out, 10, seed=2, size=(128, 96), side_effects=0.6)
    return out


def _truth(pairs: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (pairs / "manifest.jsonl").read_text().splitlines()]
    return {row["id"]: row for row in rows}


def test_records_carry_the_split_and_its_masks(pairs, tmp_path):
    run = tmp_path / "run"
    summary = annotate(
        open_dataset(pairs), DETECTOR, run, analyses=[FaithfulnessAnalysis("mask")], progress=False
    )
    assert summary.done == 10 and summary.failed == 0
    truth = _truth(pairs)
    records = list(iter_latest_records(run))
    with_side_effect = [r for r in records if truth[r["id"]]["side_effect"] is not None]
    assert 0 < len(with_side_effect) < 10
    for record in records:
        fields = record["faithfulness"]
        assert set(fields) >= {
            "intent_coverage",
            "side_effect_fraction",
            "side_effect",
            "not_executed",
            "intended_mask",
            "side_effect_mask",
        }
        assert (
            fields["intent"] == "mask" and fields["edit_type"] == truth[record["id"]]["edit_type"]
        )
        # Paths relative to the run folder, beside the mask in the pair's shard.
        assert fields["side_effect_mask"] == f"shards/00000/side_effect_masks/{record['id']}.png"
        predicted = load_mask(run / fields["side_effect_mask"])
        expected = load_mask(pairs / truth[record["id"]]["side_effect_mask"])
        # A sensitive pixel detector on noise-free pairs finds exactly the unasked edit
        # (up to sub-area components and pixels inside the dilated intent).
        overlap = (predicted & expected).sum() / max(1, (predicted | expected).sum())
        assert fields["side_effect"] == (truth[record["id"]]["side_effect"] is not None)
        if fields["side_effect"]:
            assert overlap > 0.95
        assert not fields["not_executed"] and fields["intent_coverage"] > 0.9
        intended = load_mask(run / fields["intended_mask"])
        assert not (intended & predicted).any()
    assert summary.faithfulness == {
        "n": 10,
        "faithful": 10 - len(with_side_effect),
        "side_effect": len(with_side_effect),
        "not_executed": 0,
    }

    report = load_run(run)
    assert report.gallery["scores"][:2] == ["side-effect fraction", "intent coverage"]
    assert any(image["label"] == "faithfulness" for image in report.gallery["pair_images"])
    assert (run / "report_assets" / "synth_000000.faithfulness.jpg").is_file()
    assert report.faithfulness["n"] == 10
    assert report.faithfulness["by_edit_type"]["global"]["side_effect"] == 0
    assert report.faithfulness["by_source"]["manifest.jsonl"]["n"] == 10


def test_cli_annotate_faithfulness_and_export_exclude_unfaithful(pairs, tmp_path):
    run, out = tmp_path / "run", tmp_path / "export"
    result = runner.invoke(
        app,
        [
            "annotate",
            "--data",
            str(pairs),
            "-m",
            DETECTOR,
            "--out",
            str(run),
            "--faithfulness",
            "--intent",
            "mask",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "faithfulness (10 pairs)" in result.output
    flagged = {r["id"] for r in iter_latest_records(run) if r["faithfulness"]["side_effect"]}
    result = runner.invoke(
        app, ["export", "--run", str(run), "--out", str(out), "--exclude-unfaithful"]
    )
    assert result.exit_code == 0, result.output
    assert f"{len(flagged)} unfaithful left out" in result.output
    rows = json.loads((out / "imdlbenco.json").read_text())
    assert len(rows) == 10 - len(flagged)
    assert not any(Path(edited).stem in flagged for edited, _ in rows)
    everything = runner.invoke(app, ["export", "--run", str(run), "--out", str(tmp_path / "all")])
    assert everything.exit_code == 0
    assert len(json.loads((tmp_path / "all" / "imdlbenco.json").read_text())) == 10


def test_intent_mask_without_intended_regions_fails_each_pair_by_name(make_dataset, tmp_path):
    manifest = make_dataset(n=2)  # masks but no intended regions
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "annotate",
            "--data",
            str(manifest),
            "-m",
            DETECTOR,
            "--out",
            str(run),
            "--faithfulness",
            "--intent",
            "mask",
            "--no-progress",
        ],
    )
    # Every pair failed: nothing done, exit 5 (README "Exit status"); each is named.
    assert result.exit_code == 5, result.output
    records = list(iter_latest_records(run))
    assert len(records) == 2 and all(r["status"] == "failed" for r in records)
    for record in records:
        assert (
            f"item {record['id']!r}" in record["error"] and "no intended region" in record["error"]
        )
        assert not (run / "shards/00000/masks" / f"{record['id']}.png").exists()


def test_cli_refuses_what_it_cannot_do(pairs, tmp_path):
    result = runner.invoke(
        app,
        [
            "annotate",
            "--data",
            str(pairs),
            "-m",
            DETECTOR,
            "--out",
            str(tmp_path / "r"),
            "--faithfulness",
            "--intent",
            "brush",
            "--no-progress",
        ],
    )
    assert result.exit_code != 0 and "unknown intent" in result.output
    result = runner.invoke(
        app,
        [
            "annotate",
            "--data",
            str(pairs),
            "-m",
            DETECTOR,
            "--out",
            str(tmp_path / "r"),
            "--faithfulness",
            "--engine",
            "ray",
            "--no-progress",
        ],
    )
    assert result.exit_code != 0 and "needs the sigma method" in result.output


def test_manifest_intended_mask_column_is_read_and_checked(pairs, tmp_path):
    refs = list(open_dataset(pairs))
    assert refs[0].intended_mask == (pairs / "intended_mask" / "synth_000000.png")
    from sigma_iml.data.pair import load_pair
    from sigma_iml.errors import DataError

    pair = load_pair(refs[0])
    assert pair.intended_mask is not None and pair.intended_mask.shape == pair.mask.shape
    bad = tmp_path / "manifest.jsonl"
    (tmp_path / "small.png").write_bytes(
        (pairs / "intended_mask" / "synth_000000.png").read_bytes()
    )
    from PIL import Image

    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "small.png")
    for name in ("original", "edited"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.png").write_bytes((pairs / name / "synth_000000.png").read_bytes())
    bad.write_text(
        json.dumps(
            {
                "id": "a",
                "original": "original/a.png",
                "edited": "edited/a.png",
                "intended_mask": "small.png",
            }
        )
        + "\n"
    )
    with pytest.raises(DataError, match="'a'.*intended mask is 5x5"):
        load_pair(next(iter(open_dataset(bad))))


def test_cli_grounding_intent_runs_the_branch_for_a_pixel_method(pairs, tmp_path):
    """``--intent grounding`` with pixdiff: the branch (rules parser, tiny random
    GroundingDINO and SAM 2 named by an instruction.json) gives each pair its intent."""
    from sigma_iml.testing import write_tiny_instruction_models

    models = write_tiny_instruction_models(tmp_path / "models")
    (tmp_path / "models" / "instruction.json").write_text(
        json.dumps(
            {
                "parser": "rules",
                "detector": "./" + models["grounding-dino"].name,
                "segmenter": "./" + models["sam2"].name,
            }
        )
    )
    run = tmp_path / "run"
    args = ["annotate", "--data", str(pairs), "-m", DETECTOR, "--out", str(run), "--limit", "5"]
    args += ["--faithfulness", "--intent-instruction", str(tmp_path / "models"), "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    truth = _truth(pairs)
    records = list(iter_latest_records(run))
    assert len(records) == 5 and all(r["status"] == "ok" for r in records)
    for record in records:
        fields = record["faithfulness"]
        assert fields["intent"] == "grounding"
        if truth[record["id"]]["edit_type"] == "global":  # the whole image was asked for
            assert fields["intent_coverage"] > 0.9 and fields["side_effect_fraction"] == 0.0


def test_the_analysis_travels_to_ray_tasks():
    import pickle

    analysis = pickle.loads(pickle.dumps(FaithfulnessAnalysis("mask", {"dilation": 2})))
    assert analysis.settings.dilation == 2 and analysis.intent == "mask"
