"""``sigma-iml weights``: the catalogue, the download's weights.json, the offline failure."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sigma_iml.cli import app
from sigma_iml.errors import ConfigError
from sigma_iml.testing import write_dinov2, write_tiny_taesd
from sigma_iml.weights import CATALOGUE, download_weights, folder_checksums
from sigma_iml.weights import download as download_module
from sigma_iml.weights.catalogue import find_model, is_commit
from sigma_iml.weights.download import models_from_manifest, verify_weights

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
    # The table shows every hub id whole (they are copied from it) and each commit's prefix.
    table = runner.invoke(app, ["weights", "list"]).output
    for model in CATALOGUE:
        assert model.hub_id in table and model.revision[:12] in table


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


def _hub(sources: dict[str, Path], calls: list):
    """A stand-in for ``snapshot_download``: copies the allowed files of the repository's
    source folder into local_dir, as the hub client does, and records (repo, revision)."""
    from fnmatch import fnmatch

    def fake_snapshot_download(*, repo_id, revision, allow_patterns, local_dir):
        calls.append((repo_id, revision))
        source = sources[repo_id]
        for path in source.rglob("*"):
            relative = path.relative_to(source).as_posix()
            if path.is_file() and any(fnmatch(relative, p) for p in allow_patterns):
                (Path(local_dir) / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, Path(local_dir) / relative)
        (Path(local_dir) / ".cache").mkdir(exist_ok=True)
        (Path(local_dir) / ".cache" / "bookkeeping").write_text("x")

    return fake_snapshot_download


def _no_resolve(hub_id: str, revision: str) -> str:
    raise AssertionError(f"{hub_id}@{revision} is pinned: nothing to resolve")


def test_every_catalogue_model_is_pinned_to_a_commit():
    for model in CATALOGUE:
        assert model.pinned and is_commit(model.revision), model.name
    assert not is_commit("main") and not is_commit("F9E44C8")


def test_diffusers_entries_fetch_the_weights_their_loaders_read():
    from huggingface_hub.utils import filter_repo_objects

    def fetched(name: str, files: list[str]) -> list[str]:
        return list(filter_repo_objects(files, allow_patterns=find_model(name).allow_patterns))

    # SD 1.5's vae/ holds fp32 and fp16 files: only the plain one, which the partner loads.
    sd15 = [
        "model_index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.safetensors",
    ]
    assert fetched("sd15-vae", sd15) == [
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    # The inpainting model publishes fp16 files only: those are fetched (and loaded as fp16).
    inpainting = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.fp16.safetensors",
        "sd-v1-5-inpainting.ckpt",
    ]
    assert fetched("sd15-inpainting", inpainting) == inpainting[:4]


def test_download_writes_folders_and_checksums(tmp_path: Path, monkeypatch):
    sources = {
        "facebook/dinov2-base": write_dinov2(tmp_path / "src" / "dinov2"),
        "madebyollin/taesd": write_tiny_taesd(tmp_path / "src" / "taesd"),
    }
    (sources["facebook/dinov2-base"] / "pytorch_model.bin").write_bytes(b"pickle")
    calls = []
    monkeypatch.setattr(download_module, "check_online", lambda: None)
    models = [find_model("dinov2-base"), find_model("taesd")]
    manifest = download_weights(
        tmp_path / "w", models, fetch=_hub(sources, calls), resolve=_no_resolve
    )
    # Pinned models are fetched at their catalogue commit, without asking the hub.
    assert calls == [(model.hub_id, model.revision) for model in models]
    listing = json.loads(manifest.read_text())["models"]
    assert [entry["folder"] for entry in listing] == ["facebook--dinov2-base", "madebyollin--taesd"]
    assert [entry["commit"] for entry in listing] == [model.revision for model in models]
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


def test_an_unpinned_download_records_its_commit_and_repeats_it(tmp_path: Path, monkeypatch):
    import huggingface_hub

    sources = {"facebook/dinov2-base": write_dinov2(tmp_path / "src" / "dinov2")}
    head = "0123456789abcdef0123456789abcdef01234567"
    resolved, calls = [], []

    def resolve(hub_id: str, revision: str) -> str:
        resolved.append((hub_id, revision))
        return head

    monkeypatch.setattr(download_module, "check_online", lambda: None)
    unpinned = find_model("dinov2-base").model_copy(update={"revision": "main", "pinned": False})
    manifest = download_weights(
        tmp_path / "first", [unpinned], fetch=_hub(sources, calls), resolve=resolve
    )
    # The branch is resolved once and the files are fetched at that commit, not at "main".
    assert resolved == [("facebook/dinov2-base", "main")]
    assert calls == [("facebook/dinov2-base", head)]
    (entry,) = json.loads(manifest.read_text())["models"]
    assert (entry["revision"], entry["pinned"], entry["commit"]) == ("main", False, head)

    # --from-manifest downloads that commit again, through the real hub client's name.
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _hub(sources, calls))
    monkeypatch.setattr(download_module, "resolve_commit", _no_resolve)
    second = tmp_path / "second"
    result = runner.invoke(
        app, ["weights", "download", "--to", str(second), "--from-manifest", str(manifest)]
    )
    assert result.exit_code == 0, result.output
    assert calls[-1] == ("facebook/dinov2-base", head)
    (again,) = json.loads((second / "weights.json").read_text())["models"]
    assert (again["commit"], again["pinned"], again["files"]) == (head, True, entry["files"])


def test_from_manifest_refuses_what_it_cannot_repeat(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(download_module, "check_online", lambda: None)
    manifest = tmp_path / "weights.json"
    entry = {"name": "taesd", "hub_id": "madebyollin/taesd", "revision": "main"}
    manifest.write_text(json.dumps({"models": [entry]}))
    with pytest.raises(ConfigError, match="records no commit"):
        models_from_manifest(manifest)
    manifest.write_text(json.dumps({"models": [{**entry, "hub_id": "someone/else"}]}))
    with pytest.raises(ConfigError, match="not in the catalogue"):
        models_from_manifest(manifest)
    arguments = ["weights", "download", "--to", str(tmp_path / "w"), "--from-manifest"]
    result = runner.invoke(app, [*arguments, str(manifest), "--only", "taesd"])
    assert result.exit_code == 2 and "drop --only" in result.output
    assert not (tmp_path / "w").exists()
