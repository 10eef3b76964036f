"""``sigma-iml evaluate`` and ``sigma-iml methods``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import typer

from ..data.readers import dataset_name, open_dataset, reader_options, take
from ..errors import SigmaError
from ..evaluation.evaluate import RESULT_FIELDS, evaluate
from ..methods import METHODS, build_method, method_names
from .common import (
    EXIT_NOTHING_DONE,
    EXIT_PAIRS_FAILED,
    console,
    fail,
    flag,
    literal,
    results_table,
)
from .options import (
    AllowLinks,
    BrGenOriginals,
    DatasetFormat,
    ParquetColumns,
    WebDatasetKeySpec,
    WeightsFolder,
)


def _parse_resolution(value: str) -> int | None:
    if value == "native":
        return None
    try:
        size = int(value)
    except ValueError:
        raise typer.BadParameter("use an integer size (e.g. 518) or 'native'") from None
    if size <= 0:
        raise typer.BadParameter("size must be positive")
    return size


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_command(
        data: list[Path] = typer.Option(
            ..., "--data", help="Dataset path (repeatable): manifest, folder, IMDL-BenCo JSON, ..."
        ),
        method: list[str] = typer.Option(
            ..., "--method", "-m", help="Method spec NAME[:key=value,...] (repeatable)."
        ),
        weights: WeightsFolder = None,
        resolution: str = typer.Option(
            "518",
            help="Score at this square size (images bilinear, ground truth nearest) or 'native'.",
        ),
        format: DatasetFormat = None,
        columns: ParquetColumns = None,
        keys: WebDatasetKeySpec = None,
        originals: BrGenOriginals = None,
        include_empty: bool = flag(
            "--include-empty", "Score images with an empty ground truth (IMDL-BenCo gives them 0)."
        ),
        limit: int | None = typer.Option(None, help="Use only the first N pairs of each dataset."),
        allow_links: AllowLinks = False,
        workers: int = typer.Option(2, help="Decoding threads."),
        json_out: Path | None = typer.Option(None, "--json", help="Write results as JSON here."),
        csv_out: Path | None = typer.Option(None, "--csv", help="Write results as CSV here."),
        per_image: Path | None = typer.Option(
            None, "--per-image", help="Write per-image scores (CSV) here."
        ),
    ) -> None:
        """Score methods against ground-truth masks: pixel F1 / IoU, per-image mean and micro.

        Exit status: 0 every pair scored, 2 bad options, 3 input unreadable, 4 some pairs
        skipped, 5 no pair scored (README.md, "Exit status")."""
        size = _parse_resolution(resolution)
        try:
            methods = [build_method(spec) for spec in method]
            data_format, data_options = reader_options(format, columns, keys, originals)
        except SigmaError as err:
            raise fail(err) from None
        rows, image_rows = [], []
        for path in data:
            try:
                refs = open_dataset(
                    path, format=data_format, allow_links=allow_links, **data_options
                )
                results = evaluate(
                    take(refs, limit),
                    methods,
                    dataset=dataset_name(path),
                    resolution=size,
                    include_empty=include_empty,
                    workers=workers,
                )
            except SigmaError as err:
                raise fail(err) from None
            for spec, result in zip(method, results):
                row = {**result.row(), "method_spec": spec}
                rows.append(row)
                image_rows.extend(
                    {"dataset": row["dataset"], "method": spec, **r} for r in result.per_image
                )
                for failure in result.failures[:5]:
                    console.print(
                        f"[yellow]skipped[/] {literal(failure['error'])}", highlight=False
                    )
                if len(result.failures) > 5:
                    console.print(
                        f"[yellow]... and {len(result.failures) - 5} more skipped pairs[/]"
                    )
        title = f"Pixel F1 / IoU (%) at {'native size' if size is None else f'{size}x{size}'}, threshold 0.5"
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(
                json.dumps({"results": [{k: r[k] for k in RESULT_FIELDS} for r in rows]}, indent=2)
                + "\n"
            )
        if csv_out is not None:
            csv_out.parent.mkdir(parents=True, exist_ok=True)
            with csv_out.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=RESULT_FIELDS)
                writer.writeheader()
                for row in rows:
                    writer.writerow(
                        {**{k: row[k] for k in RESULT_FIELDS}, "params": json.dumps(row["params"])}
                    )
        if per_image is not None:
            per_image.parent.mkdir(parents=True, exist_ok=True)
            fields = ["dataset", "method", "id", "f1", "iou", "tp", "fp", "fn", "gt_empty"]
            with per_image.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(image_rows)
        # The files first: nothing printed may cost the user the results.
        console.print(results_table(rows, title))
        if all(row["n"] == 0 for row in rows):
            raise typer.Exit(EXIT_NOTHING_DONE)
        if any(row["n_failed"] for row in rows):
            raise typer.Exit(EXIT_PAIRS_FAILED)

    @app.command("methods")
    def methods_command() -> None:
        """List the registered methods and their parameters."""
        for name in method_names():
            params = ", ".join(
                f"{key}={p.default!r}" if p.default is not p.empty else key
                for key, p in METHODS.parameters(name).items()
            )
            console.print(
                f"[bold]{literal(name)}[/]  {literal(METHODS.describe(name))}\n    {literal(params)}",
                highlight=False,
            )
