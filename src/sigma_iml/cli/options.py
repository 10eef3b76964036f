"""Options several commands take, as types: ``columns: ParquetColumns = None``. Each is
the one definition of its option's name and help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: ``--format``: a dataset format, detected from the path when left out.
DatasetFormat = Annotated[
    str | None, typer.Option("--format", help="Dataset format (default: detected).")
]
#: ``--columns``: which parquet columns hold a pair (a preset or a spec).
ParquetColumns = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Parquet columns: a preset (anyedit, crispedit, magicbrush, omniedit, promptfix) "
        "or original=COL,edited=COL,instruction=COL (default: detected from the schema).",
    ),
]
#: ``--keys``: how WebDataset members are named.
WebDatasetKeySpec = Annotated[
    str | None,
    typer.Option(
        "--keys",
        help="WebDataset member names, e.g. original=src|input,edited=tgt,instruction=prompt.txt "
        "(default: original/src/source, edited/tgt/target, mask, txt, json).",
    ),
]
#: ``--originals``: where a BR-Gen dataset's real images are (it publishes none).
BrGenOriginals = Annotated[
    str | None,
    typer.Option(
        "--originals",
        help="BR-Gen: your copies of its real images, coco=DIR,imagenet=DIR,places=DIR.",
    ),
]
#: ``--allow-links``: follow symbolic links out of a dataset folder.
AllowLinks = Annotated[
    bool,
    typer.Option(
        "--allow-links",
        help="Read files that symbolic links lead to outside the dataset folder (refused "
        "by default: a listing could make the job read any file it can).",
    ),
]


def use_weights_folder(folder: Path | None) -> Path | None:
    """Make every hub model load from ``folder`` (:func:`sigma_iml.hub.set_weights_dir`),
    as soon as the option is parsed; a folder that is not one is a usage error (exit 2)."""
    if folder is not None:
        from ..errors import SigmaError
        from ..hub import set_weights_dir

        try:
            set_weights_dir(folder)
        except SigmaError as err:
            raise typer.BadParameter(str(err), param_hint="--weights") from None
    return folder


#: ``--weights``: on the commands that load models, the same as ``sigma-iml --weights DIR``
#: before the command (both work; SIGMA_WEIGHTS=DIR is the root option's variable).
WeightsFolder = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        callback=use_weights_folder,
        help="Load every hub model from this folder (sigma-iml weights download --to DIR), "
        "offline; the same as `sigma-iml --weights DIR` or SIGMA_WEIGHTS=DIR.",
    ),
]
