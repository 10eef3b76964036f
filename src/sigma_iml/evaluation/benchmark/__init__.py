"""``sigma-iml benchmark``: every method on every dataset, written in the layout of the
paper's Table 1, plus the robustness study of §4.3 when the config asks for it.

A config (YAML) names the datasets, the methods and the run folder::

    out: runs/table1                 # run folder
    resolution: 518                  # or "native"
    include_empty: false
    limit: null                      # first N pairs of each dataset
    save_predictions: false          # thumbnails + predicted masks for the report gallery
    datasets:
      - {name: CoCoGlide, format: cocoglide, path: /data/CocoGlide}
      - {name: AutoSplice, format: autosplice, path: /data/AutoSplice, quality: 100}
    methods:
      - pixdiff-otsu
      - {spec: "pixdiff-fixed:tau=0.05", label: "PixDiff-Fixed (0.05)"}
    paper: [...]                     # the paper's numbers, shown beside ours
    robustness: {...}                # see RobustnessConfig

Keys of a dataset other than ``name``, ``format`` and ``path`` are the reader's options
(``quality`` for AutoSplice, ``split`` for MagicBrush, ...). Relative paths are taken
from the working directory, like every path given on the command line.

Each dataset is decoded once and scored by all methods together
(:func:`~sigma_iml.evaluation.evaluate.evaluate`).
The run folder gets ``table.md`` / ``table.csv`` (Table 1: methods as rows, per dataset
F1 and IoU as per-image means in %, and their average over datasets), ``results.json`` /
``results.csv`` (one row per dataset and method, per-image-mean and micro metrics),
``per_image.csv``, ``config.yaml`` and, when asked, ``predictions/`` and ``thumbnails/``
for the gallery of ``sigma-iml report`` and ``robustness/`` (JSON and PNG).

Modules: :mod:`.config` (the YAML's schema), :mod:`.run` (scoring), :mod:`.tables`
(Table 1), :mod:`.writers` (the run folder). What the gallery shows is written by
``sigma_iml.report.gallery``, handed to :func:`run_benchmark` by its caller: evaluation
sits below the report and does not import it.
"""

from .config import (
    BenchmarkConfig,
    DatasetEntry,
    MethodEntry,
    PaperRow,
    RobustnessConfig,
    load_config,
    select_datasets,
)
from .run import PredictionSaver, SaverFactory, run_benchmark
from .tables import BenchmarkRun, markdown_table, table_rows
from .writers import RESULTS_KIND, write_run

__all__ = [
    "RESULTS_KIND",
    "BenchmarkConfig",
    "BenchmarkRun",
    "DatasetEntry",
    "MethodEntry",
    "PaperRow",
    "PredictionSaver",
    "RobustnessConfig",
    "SaverFactory",
    "load_config",
    "markdown_table",
    "run_benchmark",
    "select_datasets",
    "table_rows",
    "write_run",
]
