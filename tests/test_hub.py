"""sigma_iml.hub: hub ids map into a weights folder, loaded local-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from sigma_iml.errors import ConfigError
from sigma_iml.hub import (
    WEIGHTS_ENV,
    folder_name,
    resolve_pretrained,
    set_weights_dir,
    weight_variants,
)


@pytest.fixture(autouse=True)
def no_weights_dir(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


def test_without_a_weights_folder_nothing_changes():
    assert resolve_pretrained("facebook/dinov2-base") == ("facebook/dinov2-base", False)
    assert resolve_pretrained("facebook/dinov2-base", True) == ("facebook/dinov2-base", True)


def test_a_hub_id_maps_to_its_folder_and_loads_offline(tmp_path: Path, monkeypatch):
    (tmp_path / "facebook--dinov2-base").mkdir()
    set_weights_dir(tmp_path)
    source, local = resolve_pretrained("facebook/dinov2-base", False)
    assert Path(source) == tmp_path.resolve() / "facebook--dinov2-base" and local is True
    # A local folder is kept as it is, and still loaded local-only.
    assert resolve_pretrained(str(tmp_path), False) == (str(tmp_path), True)
    with pytest.raises(ConfigError, match=r"Qwen--Qwen2.5-0.5B-Instruct.*weights download"):
        resolve_pretrained("Qwen/Qwen2.5-0.5B-Instruct")
    set_weights_dir(None)
    assert resolve_pretrained("facebook/dinov2-base") == ("facebook/dinov2-base", False)


def test_bad_weights_folders_and_ids_are_refused(tmp_path: Path, monkeypatch):
    with pytest.raises(ConfigError, match="not a folder"):
        set_weights_dir(tmp_path / "missing")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="SIGMA_WEIGHTS"):
        resolve_pretrained("facebook/dinov2-base")
    assert folder_name("IDEA-Research/grounding-dino-base") == "IDEA-Research--grounding-dino-base"
    with pytest.raises(ConfigError, match="not a hub model id"):
        folder_name("../escape")


def test_weight_variants_follow_the_files_of_a_local_folder(tmp_path: Path):
    def touch(*names: str) -> None:
        for name in names:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b"")

    assert weight_variants("owner/name") == (None, "fp16")  # a hub id: plain, then fp16
    assert weight_variants(str(tmp_path)) == (None,)  # no safetensors: diffusers decides
    touch("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors")
    assert weight_variants(str(tmp_path)) == (None,)  # plain files present: plain
    assert weight_variants(str(tmp_path), "vae") == (None,)
    # A component with fp16 files only (SD 1.5 inpainting's unet), sharded names too.
    touch(
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
    )
    assert weight_variants(str(tmp_path)) == ("fp16",)
    assert weight_variants(str(tmp_path), "unet") == ("fp16",)
    touch("text/model.bf16.safetensors")
    assert weight_variants(str(tmp_path), "text") == ("bf16",)
    touch("text/model.fp16.safetensors")
    assert weight_variants(str(tmp_path), "text") == ("fp16",)  # fp16 preferred
