"""SIGMA checkpoints: safetensors + JSON round trip; pickles are refused."""

from __future__ import annotations

import json
import os
import pickle
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from sigma_iml.models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from sigma_iml.models.sigma import SigmaNet
from sigma_iml.testing import tiny_sigma_config, write_dinov2, write_tiny_weights


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_dinov2(tmp_path_factory.mktemp("dinov2"), seed=2)


@pytest.fixture()
def no_torch_load(monkeypatch):
    """Fail the test if anything tries to unpickle."""

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)


def _pair():
    g = torch.Generator().manual_seed(5)
    return torch.rand(1, 3, 70, 70, generator=g), torch.rand(1, 3, 70, 70, generator=g)


def _trained_looking_net(tiny_dir):
    net = SigmaNet.from_config(
        tiny_sigma_config(str(tiny_dir), image_size=70), local_files_only=True
    )
    with torch.no_grad():  # move off the initialisation so a failed load would show
        for p in net.sigma_head.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return net.eval()


def test_round_trip_gives_identical_outputs(tiny_dir, tmp_path, no_torch_load):
    net = _trained_looking_net(tiny_dir)
    folder = save_checkpoint(net.sigma_head, net.config, tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    document = json.loads((folder / CONFIG_FILE).read_text())
    assert document["config"]["backbone"]["name_or_path"] == str(tiny_dir)
    # Only the head is stored: far smaller than head + backbone.
    assert not any(k.startswith("backbone") for k in read_checkpoint(folder)[1])

    loaded = load_checkpoint(folder, local_files_only=True)
    assert loaded.config == net.config
    original, edited = _pair()
    with torch.inference_mode():
        assert torch.equal(net(original, edited).logits, loaded(original, edited).logits)

    # The weights file alone also loads: its metadata carries the config.
    (folder / CONFIG_FILE).unlink()
    alone = load_checkpoint(folder / WEIGHTS_FILE, local_files_only=True)
    with torch.inference_mode():
        assert torch.equal(net(original, edited).logits, alone(original, edited).logits)


@pytest.mark.parametrize("name", ["head.pt", "model.ckpt", "pytorch_model.bin"])
def test_pickle_files_are_refused(tmp_path, name, no_torch_load):
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path, local_files_only=True)
    # A folder holding only pickles is refused too, naming them.
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_checkpoint(tmp_path, local_files_only=True)


def test_a_pickle_renamed_to_safetensors_is_refused(tmp_path, no_torch_load):
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / WEIGHTS_FILE).write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_checkpoint(folder)
    (folder / "weights.npz").write_bytes(b"nothing")
    with pytest.raises(CheckpointError, match="not a .safetensors"):
        read_checkpoint(folder / "weights.npz")


def test_mismatched_config_and_bad_documents_are_errors(tiny_dir, tmp_path):
    net = _trained_looking_net(tiny_dir)
    folder = save_checkpoint(net.sigma_head, net.config, tmp_path / "ckpt")
    document = json.loads((folder / CONFIG_FILE).read_text())
    document["config"]["head"]["num_drb"] = 3
    (folder / CONFIG_FILE).write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(folder, local_files_only=True)
    document["format_version"] = 99
    (folder / CONFIG_FILE).write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="format_version"):
        read_checkpoint(folder)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nowhere")


def test_tiny_weights_folder_is_relocatable(tmp_path):
    written = write_tiny_weights(tmp_path / "a")
    stored = json.loads((written["sigma"] / "config.json").read_text())
    assert stored["config"]["backbone"]["name_or_path"] == "../dinov2"
    shutil.move(tmp_path / "a", tmp_path / "b")
    net = load_checkpoint(tmp_path / "b" / "sigma", local_files_only=True)
    assert net.backbone.total_blocks == 12
    # Same seed, same weights: the fixtures are reproducible.
    again = write_tiny_weights(tmp_path / "c")
    first = read_checkpoint(tmp_path / "b" / "sigma")[1]
    second = read_checkpoint(again["sigma"])[1]
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_relative_backbone_survives_saving_the_model_elsewhere(tmp_path):
    """A checkpoint naming its backbone relative to itself (as tiny-weights writes) is
    loaded, then saved in another folder (what training does): the copy must still load."""
    from sigma_iml.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
    from sigma_iml.testing import write_tiny_weights

    written = write_tiny_weights(tmp_path / "tiny")
    assert read_checkpoint(written["sigma"])[0].backbone.name_or_path == str(
        written["dinov2"].resolve()
    )
    net = load_checkpoint(written["sigma"], local_files_only=True)
    copy = save_checkpoint(net.sigma_head, net.config, tmp_path / "elsewhere" / "deeper" / "best")
    reloaded = load_checkpoint(copy, local_files_only=True)
    for (name, a), (_, b) in zip(
        net.sigma_head.state_dict().items(), reloaded.sigma_head.state_dict().items()
    ):
        assert torch.equal(a, b), name
