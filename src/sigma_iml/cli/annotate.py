"""``sigma-iml annotate`` and ``sigma-iml export`` (docs/annotation.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..annotation.export import export_imdlbenco, export_webdataset
from ..annotation.quality import DEFAULT_QUALITY_METRIC
from ..annotation.runner import annotate
from ..data.readers import open_dataset, take
from ..errors import ConfigError, SigmaError
from .common import console, fail, percent


def register(app: typer.Typer) -> None:
    @app.command("annotate")
    def annotate_command(
        data: Path = typer.Option(
            ..., "--data", help="Dataset path: manifest, folder, IMDL-BenCo JSON, ..."
        ),
        method: str = typer.Option(..., "--method", "-m", help="Method spec NAME[:key=value,...]."),
        out: Path = typer.Option(
            ..., "--out", help="Run folder (shards/, summary.json, imdlbenco.json, ...)."
        ),
        format: str | None = typer.Option(
            None, "--format", help="Dataset format (default: detected)."
        ),
        retry_failed: bool = typer.Option(
            False, "--retry-failed", help="Run the pairs that failed before again (only those)."
        ),
        save_probability: bool = typer.Option(
            False, "--save-probability", help="Also write 8-bit probability maps."
        ),
        save_originals: bool = typer.Option(
            False,
            "--save-originals",
            help="Keep PNG copies of originals that came as bytes (Parquet, tar), for --negatives.",
        ),
        save_intermediates: bool = typer.Option(
            False,
            "--save-intermediates",
            help="Write per pair a panel of the instruction branch: concept maps, intent map, final mask (paper's Fig. 7).",
        ),
        limit: int | None = typer.Option(None, help="Annotate only the first N pairs."),
        workers: int = typer.Option(2, help="Decoding threads (in-process engine)."),
        batch_size: int | None = typer.Option(
            None, "--batch-size", help="Pairs per model call (default: the method's)."
        ),
        shard_size: int | None = typer.Option(
            None,
            "--shard-size",
            help="Pairs per output shard for a new run (default 10000; a resumed run keeps its own).",
        ),
        min_quality: float | None = typer.Option(
            None,
            "--min-quality",
            help="Leave pairs whose mask quality is below this out of the exports.",
        ),
        quality_metric: str = typer.Option(
            DEFAULT_QUALITY_METRIC,
            "--quality-metric",
            help="Score --min-quality uses: confidence or qes.",
        ),
        negatives: bool = typer.Option(
            False, "--negatives", help='Add the originals to imdlbenco.json as "Negative" rows.'
        ),
        export_webdataset_dir: Path | None = typer.Option(
            None, "--export-webdataset", help="Also write WebDataset shards of the result here."
        ),
        engine: str = typer.Option("local", "--engine", help="local (in-process) or ray."),
        ray_address: str | None = typer.Option(
            None, "--ray-address", help="Ray cluster to join (default: start a local one)."
        ),
        ray_actors: int | None = typer.Option(
            None, "--ray-actors", help="Model actors (default: one per GPU, else one)."
        ),
        progress: bool = typer.Option(
            True, "--progress/--no-progress", help="Show a progress bar."
        ),
    ) -> None:
        """Write a mask per pair at the edited image's size, resuming a previous run."""
        if ray_address and engine != "ray":
            raise fail(ConfigError("--ray-address needs --engine ray"))
        try:
            summary = annotate(
                take(open_dataset(data, format=format), limit),
                method,
                out,
                retry_failed=retry_failed,
                save_probability=save_probability,
                save_originals=save_originals,
                save_intermediates=save_intermediates,
                workers=workers,
                batch_size=batch_size,
                shard_size=shard_size,
                min_quality=min_quality,
                quality_metric=quality_metric,
                negatives=negatives,
                engine=engine,
                ray_address=ray_address,
                ray_actors=ray_actors,
                progress=progress,
                total=limit,
            )
            if export_webdataset_dir is not None:
                shards = export_webdataset(
                    out,
                    export_webdataset_dir,
                    min_quality=min_quality,
                    metric=quality_metric,
                    overwrite=True,
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
        if summary.input_error:
            console.print(
                f"[red]the input stopped early:[/] {summary.input_error}", highlight=False
            )
        if summary.scores:
            s = summary.scores
            console.print(
                f"against ground truth (native size, n={s['n']}, empty GT excluded: {s['n_empty_gt']}): "
                f"F1 {percent(s['f1'])}  IoU {percent(s['iou'])}  (micro F1 {percent(s['f1_micro'])}  "
                f"IoU {percent(s['iou_micro'])})",
                highlight=False,
            )
        console.print(
            f"IMDL-BenCo listing: {out / 'imdlbenco.json'} ({summary.exported} pairs"
            + (f" with {quality_metric} >= {min_quality}" if min_quality is not None else "")
            + ")",
            highlight=False,
        )
        if export_webdataset_dir is not None:
            console.print(
                f"WebDataset: {shards.manipulated} pairs in {len(shards.files or [])} shards "
                f"in {export_webdataset_dir}",
                highlight=False,
            )

    @app.command("export")
    def export_command(
        run: Path = typer.Option(..., "--run", help="An annotate run folder."),
        out: Path = typer.Option(..., "--out", help="Folder to write the export into."),
        format: str = typer.Option(
            "imdlbenco", "--format", help="imdlbenco (JSON lists) or webdataset (tar shards)."
        ),
        name: str = typer.Option("imdlbenco", "--name", help="IMDL-BenCo: file and test-set name."),
        min_quality: float | None = typer.Option(
            None, "--min-quality", help="Leave pairs whose mask quality is below this out."
        ),
        quality_metric: str = typer.Option(
            DEFAULT_QUALITY_METRIC, "--quality-metric", help="confidence or qes."
        ),
        negatives: bool = typer.Option(
            False, "--negatives", help='IMDL-BenCo: add the originals as "Negative" rows.'
        ),
        shard_size: int = typer.Option(1000, "--shard-size", help="WebDataset: pairs per tar."),
    ) -> None:
        """Export a finished (or partial) annotate run for IMDL-BenCo or as WebDataset."""
        try:
            if not (run / "shards").is_dir():
                raise ConfigError(f"{run} is not an annotate run folder (no shards/)")
            if format == "imdlbenco":
                result = export_imdlbenco(
                    run,
                    out,
                    name=name,
                    min_quality=min_quality,
                    metric=quality_metric,
                    negatives=negatives,
                )
            elif format == "webdataset":
                result = export_webdataset(
                    run,
                    out,
                    min_quality=min_quality,
                    metric=quality_metric,
                    max_per_shard=shard_size,
                    overwrite=True,
                )
            else:
                raise ConfigError(
                    f"unknown export format {format!r}; formats: imdlbenco, webdataset"
                )
        except SigmaError as err:
            raise fail(err) from None
        console.print(
            f"exported {result.manipulated} pairs"
            + (f", {result.negatives} negatives" if negatives else "")
            + (f"; {result.below_quality} below quality" if min_quality is not None else "")
            + (
                f"; {result.negatives_missing} originals not on disk"
                if result.negatives_missing
                else ""
            ),
            highlight=False,
        )
        for path in result.files or []:
            console.print(f"  {path}", highlight=False)
