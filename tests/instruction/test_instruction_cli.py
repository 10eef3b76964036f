"""``sigma-iml parse`` on a local Typer app."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from sigma_iml.cli.parse import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command keeps "parse" a named subcommand
    def noop() -> None:
        pass

    return app


def test_parse_prints_the_tuple():
    result = runner.invoke(_app(), ["parse", "remove the cat", "--parser", "rules"])
    assert result.exit_code == 0, result.output
    assert "('cat', 'null', remove)" in result.output


def test_parse_json_from_a_file_with_a_cache(tmp_path):
    listing = tmp_path / "instructions.txt"
    listing.write_text("remove the cat\n\nreplace the cat with a dog\nmake it snowy\n")
    cache = tmp_path / "cache.sqlite"
    args = ["parse", "--file", str(listing), "--json", "--parser", "rules", "--cache", str(cache)]
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows == [
        {"original_concept": "cat", "edited_concept": "null", "action": "remove"},
        {"original_concept": "cat", "edited_concept": "dog", "action": "replace"},
        {"original_concept": "null", "edited_concept": "null", "action": "global"},
    ]
    assert cache.is_file()
    assert runner.invoke(_app(), args).output == result.output


def test_parse_llm_with_a_tiny_model_reports_the_fallback(tiny_instruction_models):
    result = runner.invoke(
        _app(),
        [
            "parse",
            "add a bird",
            "--parser",
            "llm",
            "--model",
            str(tiny_instruction_models["qwen2"]),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "('null', 'bird', add)" in result.output and "rules-fallback" in result.output


def test_parse_errors():
    assert runner.invoke(_app(), ["parse", "--parser", "rules"]).exit_code == 2
    assert runner.invoke(_app(), ["parse", "x", "--parser", "gpt"]).exit_code == 2
    assert runner.invoke(_app(), ["parse", "--file", "/nonexistent/f.txt"]).exit_code == 2
