"""``sigma-iml parse``: editing instructions → (original concept, edited concept, action)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import SigmaError
from .common import fail
from .options import WeightsFolder


def register(app: typer.Typer) -> None:
    """Add the ``parse`` command to ``app``."""

    @app.command("parse")
    def parse(
        instructions: list[str] = typer.Argument(
            None, help='Instructions to parse, e.g. "remove the cat".'
        ),
        file: Path | None = typer.Option(
            None, "--file", "-f", help="A text file with one instruction per line."
        ),
        as_json: bool = typer.Option(
            False,
            "--json",
            help="One JSON object per line: original_concept, edited_concept, action.",
        ),
        parser: str = typer.Option(
            "auto",
            "--parser",
            help="llm, rules, or auto (the LLM when a model is given or cached locally).",
        ),
        model: str | None = typer.Option(
            None, "--model", help="LLM hub id or local folder (default Qwen2.5-0.5B-Instruct)."
        ),
        cache: Path | None = typer.Option(
            None, "--cache", help="sqlite file of a persistent parse cache."
        ),
        device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
        batch_size: int = typer.Option(8, help="Instructions per LLM batch."),
        weights: WeightsFolder = None,
    ) -> None:
        """Parse editing instructions into (original concept, edited concept, action)."""
        from ..instruction.parser import parse_instructions

        texts = list(instructions or [])
        if file is not None:
            from ..data.io import read_text

            try:
                lines = read_text(file).splitlines()
            except OSError as err:
                raise fail(f"cannot read {file}: {err}") from None
            except SigmaError as err:
                raise fail(err) from None
            texts.extend(line.strip() for line in lines if line.strip())
        if not texts:
            raise fail("no instructions: give some as arguments or with --file")
        try:
            results = parse_instructions(
                texts, parser, model=model, cache=cache, device=device, batch_size=batch_size
            )
        except SigmaError as err:
            raise fail(err) from None
        for result in results:
            if as_json:
                typer.echo(json.dumps(result.edit.to_dict(), ensure_ascii=False))
            else:
                note = f"  [{result.method}: {result.fallback}]" if result.fallback else ""
                typer.echo(f"{result.instruction}\t{result.edit}{note}")
