"""``sigma-iml annotate``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..annotation.runner import annotate
from ..data.readers import open_dataset, take
from ..errors import SigmaError
from ..methods import build_method
from .common import console, fail, percent


def register(app: typer.Typer) -> None:
    @app.command("annotate")
    def annotate_command(
        data: Path = typer.Option(
            ..., "--data", help="Dataset path: manifest, folder, IMDL-BenCo JSON, ..."
        ),
        method: str = typer.Option(..., "--method", "-m", help="Method spec NAME[:key=value,...]."),
        out: Path = typer.Option(
            ..., "--out", help="Output folder (masks/, records.jsonl, imdlbenco.json)."
        ),
        format: str | None = typer.Option(
            None, "--format", help="Dataset format (default: detected)."
        ),
        retry_failed: bool = typer.Option(
            False, "--retry-failed", help="Run the pairs that failed before again."
        ),
        save_probability: bool = typer.Option(
            False, "--save-probability", help="Also write probability maps."
        ),
        limit: int | None = typer.Option(None, help="Annotate only the first N pairs."),
        workers: int = typer.Option(2, help="Decoding threads."),
        progress: bool = typer.Option(
            True, "--progress/--no-progress", help="Show a progress bar."
        ),
    ) -> None:
        """Write a mask per pair at the edited image's size, resuming a previous run."""
        try:
            built = build_method(method)
            summary = annotate(
                take(open_dataset(data, format=format), limit),
                built,
                out,
                retry_failed=retry_failed,
                save_probability=save_probability,
                workers=workers,
                progress=progress,
                total=limit,
            )
        except SigmaError as err:
            raise fail(err) from None
        console.print(
            f"done {summary.done}, failed {summary.failed}, skipped {summary.skipped} "
            f"({summary.pairs_per_second:.2f} pairs/s); {summary.total_ok} masks in {out}",
            highlight=False,
        )
        for failure in summary.failures[:5]:
            console.print(f"[yellow]failed[/] {failure['error']}", highlight=False)
        if summary.scores:
            s = summary.scores
            console.print(
                f"against ground truth (native size, n={s['n']}, empty GT excluded: {s['n_empty_gt']}): "
                f"F1 {percent(s['f1'])}  IoU {percent(s['iou'])}  (micro F1 {percent(s['f1_micro'])}  "
                f"IoU {percent(s['iou_micro'])})",
                highlight=False,
            )
        console.print(f"IMDL-BenCo listing: {out / 'imdlbenco.json'}", highlight=False)
