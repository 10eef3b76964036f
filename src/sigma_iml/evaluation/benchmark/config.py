"""The benchmark config: which datasets, which methods, where to write, what to compare.

A :class:`~sigma_iml.config.ConfigModel` like every settings object of the package, read
from YAML by :func:`load_config` (the layout is in the package docstring).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ...config import ConfigModel, check_unique
from ...data.io import safe_filename
from ...data.readers import DATASET_FORMATS
from ...errors import ConfigError
from ..robustness import DEFAULT_LEVELS, PerturbTarget

#: Longer side of the gallery's thumbnails, in pixels, unless the config says otherwise.
DEFAULT_THUMBNAIL_SIZE = 256


class DatasetEntry(ConfigModel):
    """One dataset; extra keys are the reader's options."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    format: str
    path: Path

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def key(self) -> str:
        return safe_filename(self.name)


class MethodEntry(ConfigModel):
    spec: str = Field(min_length=1)
    #: The row name in tables (default: the spec).
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.spec

    @property
    def key(self) -> str:
        return safe_filename(self.name)


class PaperRow(ConfigModel):
    """A row of the paper's table: F1 and IoU in % per dataset name."""

    label: str
    #: The label of our method that reproduces this row, if any.
    method: str | None = None
    scores: dict[str, tuple[float, float]]


class RobustnessConfig(ConfigModel):
    """Which datasets and methods to perturb, how, and at which levels (empty list: skip
    that perturbation). Levels default to :data:`~..robustness.DEFAULT_LEVELS` (ours)."""

    datasets: list[str] | None = None
    methods: list[str] | None = None
    target: PerturbTarget = "edited"
    limit: int | None = Field(default=None, gt=0)
    seed: int = 0
    jpeg: list[float] = Field(default_factory=lambda: list(DEFAULT_LEVELS["jpeg"]))
    noise: list[float] = Field(default_factory=lambda: list(DEFAULT_LEVELS["noise"]))
    blur: list[float] = Field(default_factory=lambda: list(DEFAULT_LEVELS["blur"]))

    def levels(self) -> dict[str, list[float]]:
        # YAML's 90 arrives as 90.0; quality factors and kernel sizes are shown as integers.
        return {
            kind: [int(v) if kind != "noise" and float(v).is_integer() else v for v in values]
            for kind, values in (("jpeg", self.jpeg), ("noise", self.noise), ("blur", self.blur))
            if values
        }


class BenchmarkConfig(ConfigModel):
    datasets: list[DatasetEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)
    out: Path
    resolution: int | Literal["native"] = 518
    include_empty: bool = False
    limit: int | None = Field(default=None, gt=0)
    workers: int = Field(default=2, ge=0)
    save_predictions: bool = False
    thumbnail_size: int = Field(default=DEFAULT_THUMBNAIL_SIZE, ge=16, le=1024)
    paper: list[PaperRow] = Field(default_factory=list)
    robustness: RobustnessConfig | None = None

    @field_validator("methods", mode="before")
    @classmethod
    def _methods_from_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"spec": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("resolution")
    @classmethod
    def _positive_resolution(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError("resolution must be a positive size or 'native'")
        return value

    @model_validator(mode="after")
    def _names_are_unique_and_known(self) -> BenchmarkConfig:
        check_unique(
            {
                "dataset name": [d.name for d in self.datasets],
                "method label": [m.name for m in self.methods],
            }
        )
        known_methods = {m.name for m in self.methods} | {m.spec for m in self.methods}
        if self.robustness is not None:
            known_datasets = {d.name for d in self.datasets}
            for name in self.robustness.datasets or []:
                if name not in known_datasets:
                    raise ValueError(f"robustness dataset {name!r} is not one of the datasets")
            for name in self.robustness.methods or []:
                if name not in known_methods:
                    raise ValueError(f"robustness method {name!r} is not a method label or spec")
        for row in self.paper:
            if row.method is not None and row.method not in known_methods:
                raise ValueError(
                    f"paper row {row.label!r}: {row.method!r} is not a method label or spec"
                )
        return self

    @property
    def size(self) -> int | None:
        return None if self.resolution == "native" else int(self.resolution)


def _check_reader_options(entry: DatasetEntry) -> None:
    if entry.format not in DATASET_FORMATS:
        raise ConfigError(
            f"dataset {entry.name!r}: unknown format {entry.format!r}; known: "
            f"{', '.join(sorted(DATASET_FORMATS))}"
        )
    reader = DATASET_FORMATS[entry.format].read
    parameters = inspect.signature(reader).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    # allow_links is open_dataset's own option, taken by every format.
    unknown = [k for k in entry.options if k not in parameters and k != "allow_links"]
    if unknown and not takes_any:
        allowed = [k for k in parameters if k != "path"]
        raise ConfigError(
            f"dataset {entry.name!r}: format {entry.format!r} takes no option "
            f"{', '.join(map(repr, unknown))}; it takes: {', '.join(allowed) or 'none'}"
        )


def load_config(path: str | Path, **overrides: Any) -> BenchmarkConfig:
    """Read and validate a benchmark YAML; ``overrides`` (non-None values) replace keys."""
    config = BenchmarkConfig.load_with_overrides(path, "benchmark config", **overrides)
    for entry in config.datasets:
        _check_reader_options(entry)
    return config


def select_datasets(config: BenchmarkConfig, names: Sequence[str]) -> BenchmarkConfig:
    """The config with only the datasets named (and robustness restricted to them)."""
    if not names:
        return config
    known = {d.name for d in config.datasets}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(
            f"no dataset named {', '.join(map(repr, missing))}; known: {', '.join(sorted(known))}"
        )
    update: dict[str, Any] = {"datasets": [d for d in config.datasets if d.name in names]}
    if config.robustness is not None and config.robustness.datasets is not None:
        kept = [n for n in config.robustness.datasets if n in names]
        update["robustness"] = config.robustness.replace(datasets=kept)
    return config.replace(**update)
