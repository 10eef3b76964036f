"""``sigma-iml weights``: which hub models the pipeline uses, and an offline copy of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import EXIT_INPUT_ERROR, command_group, fail

#: ``--checkpoint`` of ``list`` and ``download``: the models a SIGMA checkpoint's settings
#: name (:func:`sigma_iml.weights.models_for_checkpoint`), not the whole catalogue.
CheckpointModels = Annotated[
    Path | None,
    typer.Option("--checkpoint", help="Only the models this SIGMA checkpoint names."),
]


@command_group("weights")
def register(weights: typer.Typer) -> None:
    """The hub models the pipeline uses; download them for offline use (--weights DIR)."""

    @weights.command("list")
    def list_weights(
        checkpoint: CheckpointModels = None,
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Every hub model the pipeline uses: id, revision, size, licence and purpose."""
        from rich.table import Table

        from ..errors import SigmaError
        from ..weights import CATALOGUE, models_for_checkpoint

        if checkpoint is not None:
            try:
                rows = models_for_checkpoint(checkpoint)
            except SigmaError as err:
                raise fail(err) from None
            if as_json:
                typer.echo(
                    json.dumps(
                        [{**row, "model": row["model"] and row["model"].to_dict()} for row in rows],
                        indent=2,
                    )
                )
                return
            table = Table(title=f"models named by {checkpoint}")
            for column in ("setting", "model", "revision", "size", "licence"):
                table.add_column(column)
            for row in rows:
                model = row["model"]
                if model is None:
                    table.add_row(
                        row["setting"], row["name_or_path"], "-", "-", "(not in catalogue)"
                    )
                else:
                    table.add_row(
                        row["setting"],
                        model.hub_id,
                        _revision(model),
                        f"{model.size_mb:g} MB",
                        model.licence,
                    )
            _print(table)
            return
        if as_json:
            typer.echo(json.dumps([model.to_dict() for model in CATALOGUE], indent=2))
            return
        table = Table(title="hub models (sizes approximate)")
        for column in ("name", "hub id", "revision", "size", "licence", "purpose"):
            table.add_column(column)
        for model in CATALOGUE:
            table.add_row(
                model.name,
                model.hub_id,
                _revision(model),
                f"{model.size_mb:g} MB",
                model.licence,
                model.purpose,
            )
        _print(table)

    @weights.command("download")
    def download(
        to: Path = typer.Option(..., "--to", help="Folder to download into (use as --weights)."),
        only: list[str] = typer.Option(
            [], "--only", help="Download only this model (name or hub id; repeatable)."
        ),
        checkpoint: CheckpointModels = None,
        from_manifest: Path | None = typer.Option(
            None,
            "--from-manifest",
            help="Download the models a weights.json lists, at the commits it records.",
        ),
    ) -> None:
        """Download safetensors weights and configs into DIR/<owner--name>, with
        DIR/weights.json recording the commit downloaded and every file's sha256. Fails at
        once when offline."""
        from ..errors import SigmaError
        from ..weights import CATALOGUE, download_weights, models_for_checkpoint
        from ..weights.catalogue import find_model
        from ..weights.download import models_from_manifest

        if from_manifest is not None and (only or checkpoint is not None):
            raise fail("--from-manifest downloads what it lists: drop --only and --checkpoint")
        try:
            models = list(CATALOGUE)
            if from_manifest is not None:
                models = models_from_manifest(from_manifest)
            if only:
                chosen = []
                for name in only:
                    model = find_model(name)
                    if model is None:
                        names = ", ".join(entry.name for entry in CATALOGUE)
                        raise fail(f"--only {name}: not in the catalogue ({names})", 2)
                    chosen.append(model)
                models = chosen
            if checkpoint is not None:
                named = [row["model"] for row in models_for_checkpoint(checkpoint)]
                models = [model for model in named if model is not None]

            def report(model) -> None:
                typer.echo(f"downloading {model.hub_id}@{model.revision} (~{model.size_mb:g} MB)")

            manifest = download_weights(to, models, progress=report)
        except SigmaError as err:
            raise fail(err) from None
        typer.echo(f"wrote {manifest}; use --weights {to} (or SIGMA_WEIGHTS={to})")

    @weights.command("verify")
    def verify(directory: Path = typer.Argument(..., help="A downloaded weights folder.")) -> None:
        """Check every file of DIR against DIR/weights.json."""
        from ..errors import SigmaError
        from ..weights.download import verify_weights

        try:
            problems = verify_weights(directory)
        except SigmaError as err:
            raise fail(err) from None
        for problem in problems:
            typer.echo(problem, err=True)
        if problems:
            raise typer.Exit(EXIT_INPUT_ERROR)
        typer.echo(f"{directory}: every file matches weights.json")


def _revision(model) -> str:
    # A commit's first 12 hex digits name it on the hub; the full hash is in --json (and
    # the table stays narrow enough not to cut hub ids).
    return model.revision[:12] if model.pinned else f"{model.revision} (unpinned)"


def _print(table) -> None:
    from rich.console import Console

    # Hub ids are copied from this table: never wrap them, even into a pipe.
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
