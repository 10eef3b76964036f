"""Helpers shared by command modules: exit statuses, error reporting and result tables
(the options several commands take are types in :mod:`.options`).

Ids, paths, method specs and error messages come from users' files; rich would read
``[/bold]`` in them as markup (and raise ``MarkupError``). Every piece of such text goes
through :func:`literal`, or is printed with ``markup=False``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import DataError, RunError, SigmaError

console = Console()
err_console = Console(stderr=True)

# Exit statuses of every command, documented in README.md ("Exit status") and
# docs/annotation.md. 1 is left to Python itself (an unexpected crash with a traceback).
#: Everything asked for was done (annotate: every pair of the input has its mask).
EXIT_OK = 0
#: A bad command line or configuration: an unknown option value, method or preset, a run
#: folder that belongs to another method or dataset. Click's own usage errors exit 2 too.
EXIT_USAGE = 2
#: The input cannot be read: no such path, no pattern match, an unknown layout or schema,
#: an unreadable file, or a damaged file that stopped the read part way.
EXIT_INPUT_ERROR = 3
#: Some pairs failed (their errors are in the records and the summary); the rest are done.
EXIT_PAIRS_FAILED = 4
#: Nothing was done: the input listed no pair, or every pair failed.
EXIT_NOTHING_DONE = 5
#: The run stopped on a fault of the run, not of a pair (a full or read-only disk, an
#: unloadable model, a dead Ray cluster): no pair was marked failed; rerun to resume.
EXIT_RUN_FAULT = 6


def literal(text: Any) -> str:
    """``text`` as a string rich prints as it is, brackets included."""
    return escape(str(text))


def exit_code_for(error: BaseException | str) -> int:
    """:data:`EXIT_INPUT_ERROR` for bad input data, :data:`EXIT_RUN_FAULT` for a fault
    of the run, :data:`EXIT_USAGE` otherwise."""
    if isinstance(error, RunError):
        return EXIT_RUN_FAULT
    return EXIT_INPUT_ERROR if isinstance(error, DataError) else EXIT_USAGE


def fail(error: BaseException | str, code: int | None = None) -> typer.Exit:
    """Print an error line and return the Exit to raise (the status follows from the
    error unless ``code`` is given; see :func:`exit_code_for`)."""
    err_console.print(f"[bold red]error:[/] {literal(error)}", highlight=False)
    return typer.Exit(exit_code_for(error) if code is None else code)


#: A command module's ``register``: adds its commands to a typer app.
Register = Callable[[typer.Typer], None]


def command_group(name: str) -> Callable[[Register], Register]:
    """Decorates a module's ``register(group)``, which adds its commands to ``group``:
    the result is ``register(app)``, which makes ``sigma-iml NAME`` a group of them,
    with the docstring as its help (as typer takes a command's) printed when no
    command is given."""

    def decorate(add_commands: Register) -> Register:
        @functools.wraps(add_commands)
        def register(app: typer.Typer) -> None:
            group = typer.Typer(help=inspect.getdoc(add_commands), no_args_is_help=True)
            add_commands(group)
            app.add_typer(group, name=name)

        return register

    return decorate


def flag(name: str, help: str, default: bool = False) -> Any:
    """A yes/no option: ``--name`` alone, or ``--name/--no-name`` to say both."""
    return typer.Option(default, name, help=help)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}"


def results_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    """Per method: n, F1 and IoU as per-image means (IMDL-BenCo) and micro, in %."""
    table = Table(
        title=title,
        title_justify="left",
        caption="F1, IoU: mean over images (IMDL-BenCo); µ: micro, counts summed over the dataset",
        caption_justify="left",
    )
    datasets = {str(row["dataset"]) for row in rows}
    single = len(datasets) == 1
    if single:  # one dataset: name it in the title, keep the width for method specs
        table.title = f"{title} — {literal(next(iter(datasets)))}"
    for column, justify in (
        *((("dataset", "left"),) if not single else ()),
        ("method", "left"),
        ("n", "right"),
        ("F1", "right"),
        ("IoU", "right"),
        ("F1 µ", "right"),
        ("IoU µ", "right"),
        ("empty", "right"),
        ("failed", "right"),
    ):
        table.add_column(
            column, justify=justify, overflow="fold", min_width=12 if column == "method" else None
        )
    for row in rows:
        table.add_row(
            *((literal(row["dataset"]),) if not single else ()),
            literal(row["method_spec"]),
            str(row["n"]),
            percent(row["f1"]),
            percent(row["iou"]),
            percent(row["f1_micro"]),
            percent(row["iou_micro"]),
            f"{row['n_empty_gt']}{'+' if row.get('empty_gt_included') else ''}",
            str(row["n_failed"]),
        )
    return table


__all__ = [
    "EXIT_INPUT_ERROR",
    "EXIT_NOTHING_DONE",
    "EXIT_OK",
    "EXIT_PAIRS_FAILED",
    "EXIT_RUN_FAULT",
    "EXIT_USAGE",
    "SigmaError",
    "command_group",
    "exit_code_for",
    "console",
    "err_console",
    "fail",
    "flag",
    "literal",
    "percent",
    "results_table",
]
