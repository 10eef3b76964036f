"""``sigma-iml finetune``: an IMDL-BenCo detector trained on an annotate run (docs/finetune.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError, SigmaError
from .common import console, fail, flag, percent


def _test_sets(values: list[str], test_format: str | None) -> list[Any]:
    """``--test PATH`` or ``--test NAME=PATH``; the name defaults to the folder's name."""
    from ..finetune import TestSet

    sets = []
    for value in values:
        name, _, path = value.rpartition("=") if "=" in value else ("", "", value)
        target = Path(path)
        if not name:
            name = (target.parent if target.is_file() else target).name or str(target)
        sets.append(TestSet(name=name, path=target, format=test_format))
    return sets


def _model_args(values: list[str]) -> dict[str, Any]:
    import yaml

    parsed: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-arg {value!r}: expected key=value")
        parsed[key] = yaml.safe_load(raw) if raw else ""
    return parsed


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune_command(
        run: Path | None = typer.Option(None, "--run", help="The annotate run to train on."),
        min_quality: float | None = typer.Option(
            None, "--min-quality", help="Train only on pairs whose mask quality clears this."
        ),
        test: list[str] = typer.Option(
            [], "--test", help="Test dataset (any format we read), PATH or NAME=PATH; repeatable."
        ),
        test_format: str | None = typer.Option(
            None, "--test-format", help="Format of the test datasets (default: detected)."
        ),
        out: Path | None = typer.Option(
            None, "--out", help="Folder for metrics.json and the checkpoint."
        ),
        model: str = typer.Option(
            "pscc_net",
            "--model",
            help="Detector preset (pscc_net, cat_net, mvss_net, iml_vit, trufor) or an IMDL-BenCo model class.",
        ),
        epochs: int = typer.Option(1, "--epochs", min=1, help="Training epochs."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        image_size: int | None = typer.Option(
            None, "--image-size", help="Training and test size (default: the preset's)."
        ),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Default: the preset's."),
        lr: float | None = typer.Option(None, "--lr", help="Default: the preset's."),
        model_arg: list[str] = typer.Option(
            [],
            "--model-arg",
            help="Model constructor argument key=value (weights paths); repeatable.",
        ),
        init_checkpoint: Path | None = typer.Option(
            None, "--init-checkpoint", help="Start from these weights (e.g. the public ones)."
        ),
        augment: bool = flag(
            "--augment/--no-augment", "IMDL-BenCo's training augmentation.", default=True
        ),
        config: Path | None = typer.Option(
            None, "--config", "-c", help="Fine-tune several detectors: Table 2 (configs/finetune/)."
        ),
        limit: int | None = typer.Option(
            None, "--limit", help="Config: score on the first N pairs of each test set."
        ),
    ) -> None:
        """Train an IMDL-BenCo detector on a run with IMDL-BenCo's own code, in its own venv;
        score it on --test before and after every epoch (IMDL-BenCo's PixelF1 / PixelIOU)."""
        from ..finetune import FinetuneOptions, finetune, load_table2_config, run_table2
        from ..finetune.runner import final_scores

        try:
            if config is not None:
                settings = load_table2_config(config, out=out, run=run, limit=limit)
                table = run_table2(settings, log=lambda m: console.print(m, highlight=False))
                console.print(Path(table["files"]["table_md"]).read_text(encoding="utf-8"))
                console.print(f"Table 2: {table['files']['table_md']}", highlight=False)
                return
            if run is None or out is None or not test:
                raise ConfigError("finetune needs --run, --test and --out (or --config)")
            options = FinetuneOptions.from_dict(
                {
                    "model": model,
                    "epochs": epochs,
                    "device": device,
                    "image_size": image_size,
                    "batch_size": batch_size,
                    "lr": lr,
                    "model_args": _model_args(model_arg),
                    "init_checkpoint": init_checkpoint,
                    "min_quality": min_quality,
                    "augment": augment,
                },
                where="finetune",
            )
            metrics = finetune(run, _test_sets(test, test_format), out, options)
        except SigmaError as err:
            raise fail(err) from None
        after = final_scores(metrics)
        for name, before in metrics["before"].items():
            console.print(
                f"{name}: F1 {percent(before['f1'])} -> {percent(after[name]['f1'])}  "
                f"IoU {percent(before['iou'])} -> {percent(after[name]['iou'])}  "
                f"(n={before['n']}, {len(metrics['epochs'])} epoch(s))",
                highlight=False,
            )
        console.print(
            f"metrics: {out / 'metrics.json'}; checkpoint: {metrics['checkpoint']} "
            f"({metrics['wall_seconds']:.1f} s)",
            highlight=False,
        )
