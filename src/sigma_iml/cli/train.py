"""``sigma-iml train stage1|stage2``: SIGMA's two training stages (paper §3.3).

The training code is :mod:`sigma_iml.training`; it is imported inside the commands so
that ``sigma-iml --help`` does not pay for torch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from .common import command_group, console, fail, literal
from .options import ParquetColumns, WebDatasetKeySpec, WeightsFolder

# The options both stages take, declared once: both run the same trainer
# (training/trainer.py RunSetup), so each means the same in Stage I and Stage II.
#: ``--out``: the run folder (required).
RunFolder = Annotated[
    Path, typer.Option("--out", help="Run folder: best/, last/, history.json, curves.png.")
]
#: ``--max-steps``: a shorter run.
MaxSteps = Annotated[
    int | None,
    typer.Option(
        "--max-steps", min=1, help="Stop after N optimizer steps (the schedule spans them)."
    ),
]
#: ``--val``: scored at the end of every epoch.
ValidationPairs = Annotated[
    Path | None,
    typer.Option("--val", help="Validation pairs with masks (F1/IoU each epoch)."),
]
#: ``--cache-features``: train from cached backbone features.
FeatureCache = Annotated[
    Path | None,
    typer.Option(
        "--cache-features",
        help="Cache the frozen backbone's features here once and train from them "
        "(flips in feature space, no crop).",
    ),
]
#: ``--priors``: overrides the config's ``priors``.
PriorsSource = Annotated[
    str | None,
    typer.Option(
        "--priors",
        help="Where the head's instruction prior comes from: instruction (the branch, "
        "default), masks (the manifest's concept masks) or none (uniform); overrides "
        "the config's priors.",
    ),
]
#: ``--offline``: no hub access.
Offline = Annotated[bool, typer.Option("--offline", help="Load models from local files only.")]


def _data_options(columns: str | None, keys: str | None) -> dict:
    """``--columns``/``--keys`` as the training code's reader options (each implies its
    format, as for annotate and evaluate)."""
    from ..data.readers import reader_options

    data_format, options = reader_options(None, columns, keys)
    return {"format": data_format, **options} if data_format else {}


def _load_config(path: Path | None, max_steps: int | None, priors: str | None):
    from ..training.config import TrainConfig

    config = TrainConfig.load(path) if path is not None else TrainConfig()
    if max_steps is not None:
        config = config.replace(max_steps=max_steps)
    if priors is not None:
        config = config.replace(priors=priors)
    return config


def _with_originals(
    data: Path | None, originals: str | None, out: Path, name: str, *, required: bool = True
):
    """``data``, or with ``--originals`` a BR-Gen dataset file ``OUT/<name>.brgen.yaml``
    naming it and the originals (training opens datasets by path alone). Unless
    ``required``, a dataset of another format is passed on as it is."""
    if originals is None or data is None:
        return data
    from ..data.formats.brgen import write_dataset_file
    from ..data.readers import detect_format
    from ..errors import ConfigError

    if detect_format(data) != "brgen":
        if not required:
            return data
        raise ConfigError(f"--originals is for BR-Gen datasets; {data} is {detect_format(data)!r}")
    return write_dataset_file(out / f"{name}.brgen.yaml", data, originals)


def _report(result) -> None:
    console.print(
        f"[bold]{result.steps}[/] steps in {result.seconds:.1f} s; outputs in {literal(result.out)}"
    )
    if result.last_validation is not None:
        v = result.last_validation
        console.print(
            f"validation at {v['resolution']}: F1 {100 * (v['f1'] or 0):.2f}  "
            f"IoU {100 * (v['iou'] or 0):.2f}  (n = {v['n']})"
        )
    if result.best is not None:
        best = result.best
        console.print(f"best: {best.metric} {best.score:.4f} at step {best.step}")
    console.print(f"checkpoints: {result.out / 'best'}, {result.out / 'last'}", markup=False)


@command_group("train")
def register(train: typer.Typer) -> None:
    """Train SIGMA: Stage I on pairs with exact masks, Stage II domain adaptation."""

    @train.command("stage1")
    def stage1(
        data: Path = typer.Option(
            ..., "--data", help="Training pairs with masks (any reader's format)."
        ),
        out: RunFolder = ...,
        config: Path | None = typer.Option(
            None, "--config", help="YAML training config (configs/train/)."
        ),
        val: ValidationPairs = None,
        max_steps: MaxSteps = None,
        init: Path | None = typer.Option(
            None, "--init", help="Start from this SIGMA checkpoint (its model config is used)."
        ),
        weights: WeightsFolder = None,
        cache_features: FeatureCache = None,
        originals: str | None = typer.Option(
            None,
            "--originals",
            help="BR-Gen --data/--val: your copies of its real images, "
            "coco=DIR,imagenet=DIR,places=DIR (written to OUT/data.brgen.yaml).",
        ),
        priors: PriorsSource = None,
        columns: ParquetColumns = None,
        keys: WebDatasetKeySpec = None,
        offline: Offline = False,
    ) -> None:
        """Stage I: supervised training on pairs with exact masks (BCE + Dice).

        Running the same command again resumes an interrupted run from OUT/last.
        """
        from ..errors import SigmaError
        from ..training.stage1 import train_stage1

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            result = train_stage1(
                _load_config(config, max_steps, priors),
                _with_originals(data, originals, out, "data"),
                out,
                val=_with_originals(val, originals, out, "val", required=False),
                init=init,
                cache_features=cache_features,
                local_files_only=offline,
                data_options=_data_options(columns, keys),
            )
        except SigmaError as err:
            raise fail(err) from err
        _report(result)

    @train.command("stage2")
    def stage2(
        labeled: Path = typer.Option(
            ..., "--labeled", help="Stage I pairs with masks (keeps L_seg)."
        ),
        unlabeled: Path = typer.Option(
            ..., "--unlabeled", help="Unlabelled editing pairs to adapt to."
        ),
        init: Path = typer.Option(..., "--init", help="The Stage I checkpoint to start from."),
        weights: WeightsFolder = None,
        out: RunFolder = ...,
        config: Path | None = typer.Option(
            None, "--config", help="YAML training config (configs/train/stage2.yaml)."
        ),
        max_steps: MaxSteps = None,
        val: ValidationPairs = None,
        cache_features: FeatureCache = None,
        partners: Path | None = typer.Option(
            None, "--partners", help="Folder of the cached VAE round trips (default OUT/partners)."
        ),
        priors: PriorsSource = None,
        columns: ParquetColumns = None,
        keys: WebDatasetKeySpec = None,
        offline: Offline = False,
    ) -> None:
        """Stage II: VAE round-trip calibration, EMA self-training and edit-noise
        disentanglement on unlabelled pairs, keeping L_seg on labelled ones."""
        from ..errors import SigmaError
        from ..training.config import STAGE2_EPOCHS
        from ..training.stage2 import train_stage2

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            settings = _load_config(config, max_steps, priors)
            if config is None:  # the paper's 5 Stage II epochs, not Stage I's 10
                settings = settings.replace(epochs=STAGE2_EPOCHS)
            result = train_stage2(
                settings,
                labeled,
                unlabeled,
                init,
                out,
                val=val,
                cache_features=cache_features,
                partners=partners,
                local_files_only=offline,
                data_options=_data_options(columns, keys),  # of --unlabeled, the corpus
            )
        except SigmaError as err:
            raise fail(err) from err
        _report(result)
