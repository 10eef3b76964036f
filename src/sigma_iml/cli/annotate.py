"""``sigma-iml annotate`` and ``sigma-iml export`` (docs/annotation.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..annotation import AnnotateOptions, LocalEngine, RayEngine, annotate
from ..annotation.engine import Engine
from ..annotation.export import export_imdlbenco, export_webdataset
from ..annotation.quality import DEFAULT_QUALITY_METRIC
from ..data.readers import (
    count_pairs,
    dataset_identity,
    detect_format,
    open_dataset,
    reader_options,
    take,
)
from ..data.run_layout import SHARDS
from ..errors import ConfigError, SigmaError
from .common import (
    EXIT_INPUT_ERROR,
    EXIT_NOTHING_DONE,
    EXIT_OK,
    EXIT_PAIRS_FAILED,
    console,
    fail,
    flag,
    literal,
    percent,
)
from .options import (
    AllowLinks,
    BrGenOriginals,
    DatasetFormat,
    ParquetColumns,
    WebDatasetKeySpec,
    WeightsFolder,
)

ENGINES = (LocalEngine.name, RayEngine.name)


def _quality_options(min_quality_help: str, metric_help: str) -> tuple[Any, Any]:
    """``--min-quality`` and ``--quality-metric``, shared by annotate and export."""
    return (
        typer.Option(None, "--min-quality", help=min_quality_help),
        typer.Option(DEFAULT_QUALITY_METRIC, "--quality-metric", help=metric_help),
    )


def _selection(
    min_quality: float | None, metric: str, exclude_unfaithful: bool = False
) -> dict[str, Any]:
    """Which pairs of a run an export writes: the same for every format of ``export``
    and for ``annotate --export-webdataset``."""
    return {"min_quality": min_quality, "metric": metric, "exclude_unfaithful": exclude_unfaithful}


def _engine(name: str, workers: int, ray_address: str | None, ray_actors: int | None) -> Engine:
    """The engine ``--engine`` names, with the options that belong to it."""
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; engines: {', '.join(ENGINES)}")
    if name == RayEngine.name:
        return RayEngine.from_dict({"address": ray_address, "actors": ray_actors}, "--engine ray")
    return LocalEngine.from_dict({"workers": workers}, "--engine local")


def annotate_exit_code(summary: Any) -> int:
    """The exit status of an annotate run (cli/common.py lists them): the input stopped
    early, nothing done (no pair listed, or none has a mask), some pairs failed, or
    every pair done."""
    if summary.input_error:
        return EXIT_INPUT_ERROR
    if summary.done + summary.failed + summary.skipped == 0 or summary.total_ok == 0:
        return EXIT_NOTHING_DONE
    if summary.failed or summary.total_failed:
        return EXIT_PAIRS_FAILED
    return EXIT_OK


def _faithfulness(
    enabled: bool,
    intent: str,
    instruction: Path | None,
    settings: Path | None,
    engine: str,
    method: str,
) -> list[Any]:
    """The ``--faithfulness`` step for ``annotate`` (none without the flag)."""
    if not enabled:
        if instruction is not None or settings is not None:
            raise ConfigError(
                "--intent-instruction and --faithfulness-settings need --faithfulness"
            )
        return []
    from ..faithfulness import FaithfulnessAnalysis, FaithfulnessSettings
    from ..models.checkpoint import instruction_settings

    if (
        engine == RayEngine.name
        and intent == "grounding"
        and not method.strip().startswith("sigma")
    ):
        # Ray's writer tasks would each load the instruction models again.
        raise ConfigError(
            "--faithfulness --intent grounding on --engine ray needs the sigma method (its "
            "prediction carries the prior P); use --engine local or --intent mask"
        )
    branch = None
    if instruction is not None:
        branch = instruction_settings(instruction)
        if not branch:
            raise ConfigError(f"--intent-instruction: no instruction.json in {instruction}")
        branch.setdefault("local_files_only", True)
    thresholds = FaithfulnessSettings.load(settings) if settings is not None else None
    return [FaithfulnessAnalysis(intent, thresholds, branch)]


def register(app: typer.Typer) -> None:
    annotate_min_quality, annotate_quality_metric = _quality_options(
        "Leave pairs whose mask quality is below this out of the exports.",
        "Score --min-quality uses: confidence or qes.",
    )
    export_min_quality, export_quality_metric = _quality_options(
        "Leave pairs whose mask quality is below this out.", "confidence or qes."
    )

    @app.command("annotate")
    def annotate_command(
        data: Path = typer.Option(
            ...,
            "--data",
            help="Dataset path: manifest, folder, parquet, tar shards, a glob "
            "('data/train-*.parquet') or braces ('shard-{000000..000099}.tar'), quoted.",
        ),
        method: str = typer.Option(..., "--method", "-m", help="Method spec NAME[:key=value,...]."),
        weights: WeightsFolder = None,
        out: Path = typer.Option(
            ..., "--out", help="Run folder (shards/, summary.json, imdlbenco.json, ...)."
        ),
        format: DatasetFormat = None,
        columns: ParquetColumns = None,
        keys: WebDatasetKeySpec = None,
        originals: BrGenOriginals = None,
        retry_failed: bool = flag(
            "--retry-failed", "Run the pairs that failed before again (only those)."
        ),
        save_probability: bool = flag("--save-probability", "Also write 8-bit probability maps."),
        save_originals: bool = flag(
            "--save-originals",
            "Keep copies of originals that came as bytes (Parquet, tar), for --negatives.",
        ),
        save_intermediates: bool = flag(
            "--save-intermediates",
            "Write per pair a panel of the instruction branch: concept maps, intent map, final mask (paper's Fig. 7).",
        ),
        limit: int | None = typer.Option(None, help="Annotate only the first N pairs."),
        allow_links: AllowLinks = False,
        workers: int = typer.Option(2, help="Decoding threads (in-process engine)."),
        batch_size: int | None = typer.Option(
            None, "--batch-size", help="Pairs per model call (default: the method's)."
        ),
        shard_size: int | None = typer.Option(
            None,
            "--shard-size",
            help="Pairs per output shard for a new run (default 10000; a resumed run keeps its own).",
        ),
        min_quality: float | None = annotate_min_quality,
        quality_metric: str = annotate_quality_metric,
        negatives: bool = flag(
            "--negatives", 'Add the originals to imdlbenco.json as "Negative" rows.'
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
        progress: bool = flag("--progress/--no-progress", "Show a progress bar.", default=True),
        faithfulness: bool = flag(
            "--faithfulness",
            "Split each mask into intended change, side effect and intent not executed "
            "(docs/faithfulness.md).",
        ),
        intent: str = typer.Option(
            "grounding",
            "--intent",
            help="With --faithfulness: grounding (the instruction branch's prior P) or mask "
            "(the dataset's intended region).",
        ),
        intent_instruction: Path | None = typer.Option(
            None,
            "--intent-instruction",
            help="With --intent grounding and a method without an instruction branch: a "
            "folder holding instruction.json (e.g. one of sigma-iml dev tiny-weights).",
        ),
        faithfulness_settings: Path | None = typer.Option(
            None,
            "--faithfulness-settings",
            help="YAML/JSON of split thresholds (dilation, min_side_effect_area, ...).",
        ),
    ) -> None:
        """Write a mask per pair at the edited image's size, resuming a previous run.

        Exit status: 0 every pair done, 2 bad options, 3 input unreadable, 4 some pairs
        failed, 5 nothing done (README.md, "Exit status")."""
        if ray_address and engine != RayEngine.name:
            raise fail(ConfigError("--ray-address needs --engine ray"))
        try:
            data_format, data_options = reader_options(format, columns, keys, originals)
            data_format = data_format or detect_format(data)  # once: sniffing lists folders
            refs = open_dataset(data, format=data_format, allow_links=allow_links, **data_options)
            identity = dataset_identity(data, data_format, **data_options)
            total = count_pairs(data, data_format, **data_options)
            if limit is not None:
                total = limit if total is None else min(total, limit)
            analyses = _faithfulness(
                faithfulness, intent, intent_instruction, faithfulness_settings, engine, method
            )
            options = AnnotateOptions.from_dict(
                {
                    "retry_failed": retry_failed,
                    "save_probability": save_probability,
                    "save_originals": save_originals,
                    "save_intermediates": save_intermediates,
                    "batch_size": batch_size,
                    "shard_size": shard_size,
                    "min_quality": min_quality,
                    "quality_metric": quality_metric,
                    "negatives": negatives,
                },
                where="annotate",
            )
            summary = annotate(
                take(refs, limit),
                method,
                out,
                options,
                engine=_engine(engine, workers, ray_address, ray_actors),
                progress=progress,
                total=total,
                dataset=identity,
                analyses=analyses,
            )
            if export_webdataset_dir is not None:
                shards = export_webdataset(
                    out,
                    export_webdataset_dir,
                    overwrite=True,
                    **_selection(options.min_quality, options.quality_metric),
                )
        except SigmaError as err:
            raise fail(err) from None
        console.print(
            f"done {summary.done}, failed {summary.failed}, skipped {summary.skipped} "
            f"({summary.pairs_per_second:.2f} pairs/s); {summary.total_ok} masks in {out}",
            markup=False,
            highlight=False,
        )
        for failure in summary.failures[:5]:
            console.print(f"[yellow]failed[/] {literal(failure['error'])}", highlight=False)
        if summary.faithfulness:
            f = summary.faithfulness
            console.print(
                f"faithfulness ({f['n']} pairs): side effect {f['side_effect']}, "
                f"intent not executed {f['not_executed']}, faithful {f['faithful']}",
                highlight=False,
            )
        if summary.input_error:
            console.print(
                f"[red]the input stopped early:[/] {literal(summary.input_error)}", highlight=False
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
            markup=False,
            highlight=False,
        )
        if export_webdataset_dir is not None:
            console.print(
                f"WebDataset: {shards.manipulated} pairs in {len(shards.files or [])} shards "
                f"in {export_webdataset_dir}",
                markup=False,
                highlight=False,
            )
        status = annotate_exit_code(summary)
        if status == EXIT_NOTHING_DONE:
            listed = summary.done + summary.failed + summary.skipped
            console.print(
                "[red]nothing was done:[/] "
                + (
                    "the input listed no pair" if listed == 0 else "no pair of the input has a mask"
                ),
                highlight=False,
            )
        if status != EXIT_OK:
            raise typer.Exit(status)

    @app.command("export")
    def export_command(
        run: Path = typer.Option(..., "--run", help="An annotate run folder."),
        out: Path = typer.Option(..., "--out", help="Folder to write the export into."),
        format: str = typer.Option(
            "imdlbenco",
            "--format",
            help="imdlbenco (JSON lists), webdataset (tar shards) or hf (parquet + dataset card).",
        ),
        name: str = typer.Option("imdlbenco", "--name", help="IMDL-BenCo: file and test-set name."),
        min_quality: float | None = export_min_quality,
        quality_metric: str = export_quality_metric,
        negatives: bool = flag("--negatives", 'IMDL-BenCo: add the originals as "Negative" rows.'),
        shard_size: int | None = typer.Option(
            None,
            "--shard-size",
            help="WebDataset: pairs per tar (1000); hf: rows per parquet (500).",
        ),
        corpus: str | None = typer.Option(
            None, "--corpus", help="hf: the source corpus name (default: from each pair's source)."
        ),
        exclude_unfaithful: bool = flag(
            "--exclude-unfaithful",
            "Leave out pairs flagged with a side effect or an intent not executed "
            "(a run annotated with --faithfulness).",
        ),
    ) -> None:
        """Export a finished (or partial) annotate run for IMDL-BenCo, as WebDataset, or as a
        Hugging Face dataset (parquet shards and a README.md dataset card)."""
        try:
            if not (run / SHARDS).is_dir():
                raise ConfigError(f"{run} is not an annotate run folder (no shards/)")
            selection = _selection(min_quality, quality_metric, exclude_unfaithful)
            if format == "imdlbenco":
                result = export_imdlbenco(run, out, name=name, negatives=negatives, **selection)
            elif format == "webdataset":
                result = export_webdataset(
                    run, out, max_per_shard=shard_size or 1000, overwrite=True, **selection
                )
            elif format == "hf":
                from ..annotation.hf_export import export_hf

                result = export_hf(
                    run, out, rows_per_shard=shard_size or 500, corpus=corpus, **selection
                )
            else:
                raise ConfigError(
                    f"unknown export format {format!r}; formats: imdlbenco, webdataset, hf"
                )
        except SigmaError as err:
            raise fail(err) from None
        console.print(
            f"exported {result.manipulated} pairs"
            + (f", {result.negatives} negatives" if negatives else "")
            + (f"; {result.below_quality} below quality" if min_quality is not None else "")
            + (f"; {result.unfaithful} unfaithful left out" if exclude_unfaithful else "")
            + (
                f" ({result.without_faithfulness} kept without a faithfulness record)"
                if result.without_faithfulness
                else ""
            )
            + (
                f"; {result.negatives_missing} originals not on disk"
                if result.negatives_missing
                else ""
            ),
            highlight=False,
        )
        for path in result.files or []:
            console.print(f"  {path}", markup=False, highlight=False)
