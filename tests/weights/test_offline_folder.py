"""``--weights DIR``: a folder of tiny models laid out under the catalogue's names runs
parse (LLM) -> ground -> network and a short training, with every model named by its hub
id and nothing fetched from the hub."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sigma_iml.cli import app
from sigma_iml.data.synth import make_pairs
from sigma_iml.hub import WEIGHTS_ENV, set_weights_dir
from sigma_iml.instruction.grounding import load_grounding_models
from sigma_iml.instruction.llm import load_causal_lm
from sigma_iml.models.checkpoint import save_checkpoint
from sigma_iml.models.sigma import SigmaHead
from sigma_iml.testing import tiny_sigma_config, write_tiny_pipeline
from sigma_iml.weights.catalogue import find_model

runner = CliRunner()


@pytest.fixture
def weights(tmp_path: Path, monkeypatch) -> Path:
    """DIR with the tiny models under the catalogue's folder names, and a checkpoint that
    names every model by its hub id (no local path anywhere)."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)  # restored after the test
    tiny = write_tiny_pipeline(tmp_path / "tiny")
    directory = tmp_path / "weights"
    for key, name in (
        ("dinov2", "dinov2-base"),
        ("qwen2", "qwen2.5-0.5b-instruct"),
        ("grounding-dino", "grounding-dino-base"),
        ("sam2", "sam2.1-hiera-small"),
        ("taesd", "taesd"),
    ):
        shutil.copytree(tiny[key], directory / find_model(name).folder)
    config = tiny_sigma_config("facebook/dinov2-base")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        head = SigmaHead(config, 64)
    # parser llm with the default hub ids; local_files_only off: the weights folder alone
    # must keep the loaders off the network.
    save_checkpoint(head, config, tmp_path / "sigma", instruction={"parser": "llm"})
    yield directory
    load_causal_lm.cache_clear()
    load_grounding_models.cache_clear()


def test_weights_list_names_the_checkpoint_models(weights: Path):
    result = runner.invoke(
        app, ["weights", "list", "--json", "--checkpoint", str(weights.parent / "sigma")]
    )
    assert result.exit_code == 0, result.output
    rows = {row["setting"]: row["model"]["name"] for row in json.loads(result.output)}
    assert rows == {
        "model.backbone.name_or_path": "dinov2-base",
        "instruction.parser_model": "qwen2.5-0.5b-instruct",
        "instruction.detector": "grounding-dino-base",
        "instruction.segmenter": "sam2.1-hiera-small",
    }


def _with_weights(folder: Path, arguments: list[str], where: str) -> list[str]:
    """``--weights`` before the command (the root option) or among its options."""
    if where == "root":
        return ["--weights", str(folder), *arguments]
    return [*arguments, "--weights", str(folder)]


@pytest.mark.parametrize("where", ["root", "command"])
def test_annotate_runs_parse_ground_network_from_the_weights_folder(
    weights: Path, tmp_path: Path, where: str
):
    data = tmp_path / "pairs"
    make_pairs(data, 2, seed=1, size=(56, 48))
    arguments = ["annotate", "--data", str(data), "--out", str(tmp_path / "run"), "--no-progress"]
    arguments += ["-m", f"sigma:checkpoint={tmp_path / 'sigma'},device=cpu"]
    # Without the folder the hub id cannot load here (offline): the run fails.
    missing = runner.invoke(app, _with_weights(tmp_path / "tiny", arguments, where))
    assert missing.exit_code != 0 and "not in the weights folder" in missing.output
    not_a_folder = runner.invoke(app, _with_weights(tmp_path / "nothing", arguments, where))
    assert not_a_folder.exit_code == 2
    # rich wraps the message in a box: compare the words alone
    assert "not a folder" in " ".join(re.sub(r"[│╭╮╰╯─]", " ", not_a_folder.output).split())
    result = runner.invoke(app, _with_weights(weights, arguments, where))
    assert result.exit_code == 0, result.output
    masks = sorted((tmp_path / "run").rglob("*.png"))
    assert masks
    records = [
        json.loads(line)
        for path in (tmp_path / "run").rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    parsed = [r for r in records if "parsed_instruction" in json.dumps(r)]
    assert parsed, records[:1]


def test_training_and_partner_load_from_the_weights_folder(weights: Path, tmp_path: Path):
    from sigma_iml.models.config import BackboneConfig, HeadConfig, SigmaConfig
    from sigma_iml.training.config import PartnerConfig, TrainConfig
    from sigma_iml.training.partners import RoundTrip
    from sigma_iml.training.stage1 import train_stage1

    set_weights_dir(weights)
    make_pairs(tmp_path / "pairs", 4, seed=2, size=(56, 48))
    model = SigmaConfig(
        backbone=BackboneConfig(name_or_path="facebook/dinov2-base", image_size=(56, 56)),
        head=HeadConfig(embed_dim=16, num_heads=1, fpn_dim=8, decoder_dim=8),
    )
    config = TrainConfig(
        model=model, epochs=1, batch_size=2, device="cpu", cache_dtype="float32", log_every=1
    )
    run = train_stage1(config, tmp_path / "pairs", tmp_path / "s1", local_files_only=False)
    assert run is not None and any((tmp_path / "s1").rglob("*.safetensors"))
    partner = RoundTrip(PartnerConfig(kind="taesd", name_or_path="madebyollin/taesd", subfolder=""))
    image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert partner([image])[0].shape == (32, 40, 3)
