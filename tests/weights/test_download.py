"""``sigma-iml weights``: the catalogue, the download's weights.json, the offline failure."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sigma_iml.cli import app
from sigma_iml.testing import write_dinov2, write_tiny_taesd
from sigma_iml.weights import CATALOGUE, download_weights, folder_checksums
from sigma_iml.weights import download as download_module
from sigma_iml.weights.catalogue import find_model
from sigma_iml.weights.download import verify_weights

runner = CliRunner()


def test_the_catalogue_names_every_model_the_pipeline_loads():
    from sigma_iml.instruction.grounding import DEFAULT_DETECTOR, DEFAULT_SEGMENTER
    from sigma_iml.instruction.llm import DEFAULT_LLM
    from sigma_iml.models.config import BackboneConfig
    from sigma_iml.training.config import PartnerConfig

    ids = {model.hub_id for model in CATALOGUE}
    defaults = {DEFAULT_DETECTOR, DEFAULT_SEGMENTER, DEFAULT_LLM}
    defaults |= {BackboneConfig().name_or_path, PartnerConfig().name_or_path}
    assert defaults <= ids
    for model in CATALOGUE:
        assert model.licence and model.purpose and model.size_mb > 0
        assert not any(p.endswith((".bin", ".pt", ".ckpt")) for p in model.allow_patterns)
        assert model.pinned == (len(model.revision) == 40)
    result = runner.invoke(app, ["weights", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [row["hub_id"] for row in listed] == [model.hub_id for model in CATALOGUE]


def test_offline_download_fails_at_once(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    result = runner.invoke(app, ["weights", "download", "--to", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "HF_HUB_OFFLINE is set" in result.output and "--weights DIR" in result.output
    assert time.monotonic() - started < 5
    assert not (tmp_path / "w" / "weights.json").exists()


def test_an_unreachable_hub_fails_at_once(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    with pytest.raises(download_module.OfflineError, match="cannot reach"):
        # Port 9 on localhost (discard) is closed: refused at once.
        download_module.check_online("http://127.0.0.1:9")


def test_download_writes_folders_and_checksums(tmp_path: Path, monkeypatch):
    sources = {
        "facebook/dinov2-base": write_dinov2(tmp_path / "src" / "dinov2"),
        "madebyollin/taesd": write_tiny_taesd(tmp_path / "src" / "taesd"),
    }
    (sources["facebook/dinov2-base"] / "pytorch_model.bin").write_bytes(b"pickle")
    calls = []

    def fake_snapshot_download(*, repo_id, revision, allow_patterns, local_dir):
        # What the hub client does: the allowed files of the repository into local_dir.
        from fnmatch import fnmatch

        calls.append((repo_id, revision))
        source = sources[repo_id]
        for path in source.rglob("*"):
            relative = path.relative_to(source).as_posix()
            if path.is_file() and any(fnmatch(relative, p) for p in allow_patterns):
                (Path(local_dir) / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, Path(local_dir) / relative)
        (Path(local_dir) / ".cache").mkdir(exist_ok=True)
        (Path(local_dir) / ".cache" / "bookkeeping").write_text("x")

    monkeypatch.setattr(download_module, "check_online", lambda: None)
    models = [find_model("dinov2-base"), find_model("taesd")]
    manifest = download_weights(tmp_path / "w", models, fetch=fake_snapshot_download)
    assert calls == [("facebook/dinov2-base", "main"), ("madebyollin/taesd", "main")]
    listing = json.loads(manifest.read_text())["models"]
    assert [entry["folder"] for entry in listing] == ["facebook--dinov2-base", "madebyollin--taesd"]
    dinov2 = listing[0]["files"]
    assert set(dinov2) == {"config.json", "model.safetensors"}  # no .bin, no .cache
    import hashlib

    weights = tmp_path / "w" / "facebook--dinov2-base" / "model.safetensors"
    assert dinov2["model.safetensors"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert dinov2["model.safetensors"]["bytes"] == weights.stat().st_size
    assert folder_checksums(weights.parent) == dinov2
    assert verify_weights(tmp_path / "w") == []
    weights.write_bytes(b"changed")
    assert verify_weights(tmp_path / "w") == [
        "facebook--dinov2-base/model.safetensors: checksum differs"
    ]
    result = runner.invoke(app, ["weights", "verify", str(tmp_path / "w")])
    assert result.exit_code == 3 and "checksum differs" in result.output
