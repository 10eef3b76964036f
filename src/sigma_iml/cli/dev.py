"""``sigma-iml dev``: developer tools (tiny offline model folders)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import command_group


@command_group("dev")
def register(dev: typer.Typer) -> None:
    """Developer tools: tiny offline models for tests and demos."""

    @dev.command("tiny-weights")
    def tiny_weights(
        directory: Path = typer.Argument(..., help="Folder to write the tiny models into."),
        seed: int = typer.Option(0, help="Seed of the random initialisation."),
    ) -> None:
        """Write tiny randomly initialised models: DIR/dinov2, DIR/qwen2,
        DIR/grounding-dino, DIR/sam2 (Hugging Face folders), DIR/vae and DIR/taesd
        (diffusers autoencoders for Stage II), DIR/inpaint (a diffusers inpainting
        pipeline for ``make-pairs --inpaint``) and DIR/sigma (an untrained SIGMA checkpoint
        using them, with an instruction.json naming the instruction models).

        Their masks mean nothing; they let the whole pipeline run offline, e.g.
        ``sigma-iml annotate --method sigma:checkpoint=DIR/sigma ...``.
        """
        from ..testing import write_tiny_pipeline
        from ..testing.inpainting import write_tiny_inpainting_pipeline

        written = write_tiny_pipeline(directory, seed=seed)
        written["inpaint"] = write_tiny_inpainting_pipeline(directory / "inpaint", seed=seed)
        for name, path in written.items():
            typer.echo(f"{name}: {path}")
