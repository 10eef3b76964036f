"""Root typer application; each command group lives in its own module."""

from __future__ import annotations

from pathlib import Path

import typer

from .._version import __version__
from .options import use_weights_folder

app = typer.Typer(
    name="sigma-iml",
    help="Masks of what an image editor changed, from (original, edited, instruction) pairs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sigma-iml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        envvar="SIGMA_WEIGHTS",
        help="Load every hub model from this folder (sigma-iml weights download --to DIR), "
        "offline. Also: SIGMA_WEIGHTS=DIR.",
    ),
) -> None:
    """sigma-iml: semantic-difference, instruction-grounded mask annotation (SIGMA)."""
    use_weights_folder(weights)


def _register_commands() -> None:
    # Each module adds its own commands; imports stay light until a command runs.
    from . import (
        annotate,
        benchmark,
        dev,
        evaluate,
        finetune,
        make_pairs,
        parse,
        report,
        train,
        weights,
    )

    commands = (make_pairs, evaluate, annotate, parse, train, benchmark, finetune, report)
    for module in (*commands, weights, dev):
        module.register(app)


_register_commands()


def main() -> None:
    app()
