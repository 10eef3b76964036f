"""``sigma-iml finetune``: one real epoch of IMDL-BenCo's PSCC-Net on a generated run, in
IMDL-BenCo's own venv (skips without it), and the Table 2 arithmetic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from sigma_iml.annotation.runner import annotate
from sigma_iml.cli.app import app
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.data.synth import make_pairs
from sigma_iml.errors import ConfigError
from sigma_iml.finetune import PRESETS, imdlbenco_python
from sigma_iml.finetune.models import model_arguments, resolve_model
from sigma_iml.finetune.table2 import Table2Config, _markdown, table2_rows
from sigma_iml.methods import build_method

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    imdlbenco_python() is None,
    reason="no .venv-imdlbenco (bash scripts/setup-imdlbenco.sh creates it)",
)
def test_finetune_one_epoch_on_cpu_writes_metrics_and_checkpoint(tmp_path):
    train = make_pairs(tmp_path / "pairs", 8, seed=0, noise=0.5, size=(64, 64))
    test = make_pairs(tmp_path / "test", 4, seed=1, noise=0.5, size=(64, 64))
    run = tmp_path / "run"
    annotate(iter_manifest(train), build_method("pixdiff-otsu"), run, progress=False)
    out = tmp_path / "ft"
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "--run",
            str(run),
            "--test",
            f"synth={test}",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--image-size",
            "64",
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output + (out / "imdlbenco.log").read_text()[-3000:]
    assert "synth: F1" in result.output

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "PSCC_Net" and metrics["device"] == "cpu"
    assert metrics["n_train"] == 8 and metrics["image_size"] == 64
    # The training list is the run's own export, read as it is.
    assert metrics["train"] == str((run / "imdlbenco.json").resolve())
    assert metrics["test_sets"]["synth"]["n"] == 4
    listing = json.loads(Path(metrics["test_sets"]["synth"]["path"]).read_text())
    assert len(listing) == 4 and all(Path(a).is_file() and Path(b).is_file() for a, b in listing)
    for scores in (metrics["before"]["synth"], metrics["epochs"][0]["test"]["synth"]):
        assert 0.0 <= scores["iou"] <= scores["f1"] <= 1.0 and scores["n"] == 4
    (epoch,) = metrics["epochs"]
    assert epoch["epoch"] == 0
    losses = epoch["train_loss"]
    assert losses and all(math.isfinite(v) and v > 0 for v in losses.values())

    checkpoint = Path(metrics["checkpoint"])
    assert (
        checkpoint == (out / "checkpoint-0.pth").resolve() or checkpoint.name == "checkpoint-0.pth"
    )
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["epoch"] == 0 and {"model", "optimizer"} <= set(saved)
    weights = [v for v in saved["model"].values() if v.is_floating_point()]
    assert len(weights) > 100 and all(torch.isfinite(w).all() for w in weights)


def test_presets_and_model_names():
    preset, key = resolve_model("PSCC_Net")
    assert key == "pscc_net" and preset is PRESETS["pscc_net"]
    args = model_arguments(preset, 64, {"pretrain_path": "/w/hrnet.pth"})
    assert args == {"input_size": 64, "pretrain_path": "/w/hrnet.pth"}
    other, key = resolve_model("Mesorch")
    assert other.imdlbenco_model == "Mesorch" and key == "Mesorch"
    with pytest.raises(ConfigError, match="unknown detector"):
        resolve_model("not a model!")


def _metrics(before: dict[str, float], after: dict[str, float]) -> dict:
    def scores(f1s: dict[str, float]) -> dict:
        return {t: {"f1": v / 100, "iou": v / 200, "n": 1} for t, v in f1s.items()}

    return {"before": scores(before), "epochs": [{"test": scores(after)}]}


def test_table2_mean_gain_reproduces_the_papers_arithmetic():
    # The paper's Table 2 F1 (AutoSplice, CocoGlide, DEAL-300K, MagicBrush, OpenSDI).
    tests = ["AutoSplice", "CocoGlide", "DEAL300K", "MagicBrush", "OpenSDI"]
    paper = {
        "CAT-Net": ([41.49, 40.97, 12.14, 5.33, 7.32], [60.82, 45.53, 29.99, 61.02, 27.02]),
        "MVSSNet": ([18.04, 32.80, 5.43, 1.79, 1.46], [54.14, 35.63, 20.05, 81.95, 21.69]),
        "IML-ViT": ([25.19, 31.54, 13.69, 4.94, 13.87], [37.67, 43.21, 27.51, 13.69, 14.86]),
        "PSCC-Net": ([56.36, 50.85, 20.19, 14.87, 14.5], [57.06, 42.3, 21.16, 36.69, 22.44]),
        "Trufor": ([32.69, 28.33, 9.26, 2.51, 6.93], [63.42, 58.72, 27.85, 28.35, 27.02]),
        "MTCL": ([23.85, 44.75, 3.13, 7.76, 6.21], [57.51, 51.16, 12.47, 27.07, 20.27]),
    }
    results = {
        label: _metrics(dict(zip(tests, before)), dict(zip(tests, after)))
        for label, (before, after) in paper.items()
    }
    table = table2_rows(results, tests)
    gains = {row["label"]: row["gain_f1"] for row in table["rows"]}
    assert gains["PSCC-Net"] == pytest.approx(4.58, abs=0.01)
    assert gains["MVSSNet"] == pytest.approx(30.79, abs=0.01)
    assert table["mean_gain_f1"] == pytest.approx(18.34, abs=0.01)
    markdown = _markdown(table, [])
    assert "| PSCC-Net | before | 56.36 | 28.18 |" in markdown
    assert "Mean F1 gain over 6 detectors: +18.34" in markdown


def test_the_shipped_table2_config_is_valid():
    raw = yaml.safe_load((REPO / "configs" / "finetune" / "table2.yaml").read_text())
    config = Table2Config.from_dict(raw)
    assert [d.model for d in config.detectors][:1] == ["pscc_net"]
    assert {t.name for t in config.tests} == {
        "AutoSplice",
        "CoCoGlide",
        "DEAL-300K",
        "MagicBrush",
        "OpenSDI",
    }
    for detector in config.detectors:
        resolve_model(detector.model)
