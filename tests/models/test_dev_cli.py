"""``sigma-iml dev tiny-weights`` on a local Typer app."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import typer
from typer.testing import CliRunner

from sigma_iml.cli.dev import register
from sigma_iml.models.checkpoint import load_checkpoint


def test_tiny_weights_writes_loadable_folders(tmp_path):
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps "dev" a named group, as in the real app
        pass

    result = CliRunner().invoke(app, ["dev", "tiny-weights", str(tmp_path / "w"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "sigma:" in result.output and "dinov2:" in result.output
    assert (tmp_path / "w" / "dinov2" / "model.safetensors").is_file()
    assert (tmp_path / "w" / "sigma" / "head.safetensors").is_file()
    # The tiny inpainting pipeline of make-pairs --inpaint, loadable like a hub model.
    assert "inpaint:" in result.output
    index = (tmp_path / "w" / "inpaint" / "model_index.json").read_text()
    assert "StableDiffusionInpaintPipeline" in index
    net = load_checkpoint(tmp_path / "w" / "sigma", local_files_only=True)
    assert net.config.backbone.image_size == (112, 112)


def test_dev_group_shows_help():
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:
        pass

    result = CliRunner().invoke(app, ["dev", "--help"])
    assert result.exit_code == 0
    assert "tiny-weights" in result.output
