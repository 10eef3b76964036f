"""Helpers shared by command modules: error reporting and result tables.

Ids, paths, method specs and error messages come from users' files; rich would read
``[/bold]`` in them as markup (and raise ``MarkupError``). Every piece of such text goes
through :func:`literal`, or is printed with ``markup=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import SigmaError

console = Console()
err_console = Console(stderr=True)


def literal(text: Any) -> str:
    """``text`` as a string rich prints as it is, brackets included."""
    return escape(str(text))


def fail(error: BaseException | str, code: int = 2) -> typer.Exit:
    """Print an error line and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {literal(error)}", highlight=False)
    return typer.Exit(code)


def flag(name: str, help: str, default: bool = False) -> Any:
    """A yes/no option: ``--name`` alone, or ``--name/--no-name`` to say both."""
    return typer.Option(default, name, help=help)


def format_option() -> Any:
    """``--format``: a dataset format, detected from the path when left out."""
    return typer.Option(None, "--format", help="Dataset format (default: detected).")


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
    "SigmaError",
    "console",
    "err_console",
    "fail",
    "flag",
    "literal",
    "format_option",
    "percent",
    "results_table",
]
