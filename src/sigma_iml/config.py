"""The one configuration system of the package: typed, validated, serialisable settings.

Every settings object (the network's config, training, benchmark runs, the instruction
branch, a method's ``NAME:key=value`` parameters) is a :class:`ConfigModel`, a frozen
pydantic model that refuses unknown keys. Its values come from Python, a YAML or JSON
file, or strings on the command line, and go back to JSON with :meth:`ConfigModel.to_dict`
unchanged, so a run, a checkpoint or a spec can be rebuilt from what it wrote down.

Errors are :class:`~sigma_iml.errors.ConfigError` naming the file (when there is one),
the dotted field path and what is wrong: a user fixes a config from the message alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .errors import ConfigError

C = TypeVar("C", bound="ConfigModel")

#: Strings a spec value may use for "no value" of an optional parameter.
NONE_STRINGS = frozenset({"none", "null"})


def validation_problems(err: ValidationError) -> list[tuple[str, str]]:
    """``(dotted field path, message)`` per problem. A :class:`ConfigError` raised by a
    validator is its own message; one raised by a nested model built in Python carries
    its problems, which are listed under the outer path."""
    found: list[tuple[str, str]] = []
    for problem in err.errors():
        path = ".".join(str(part) for part in problem["loc"])
        cause = (problem.get("ctx") or {}).get("error")
        inner = getattr(cause, "problems", None)
        if isinstance(cause, ConfigError) and inner:
            found.extend((".".join(p for p in (path, sub) if p), text) for sub, text in inner)
        elif isinstance(cause, ConfigError):
            found.append((path, str(cause)))
        elif problem["type"] == "extra_forbidden":
            found.append((path, "unknown setting"))
        else:
            found.append((path, problem["msg"]))
    return found


def describe_validation_error(err: ValidationError, where: str = "") -> str:
    """One line per problem: ``where: field.path: message``."""
    lines = []
    for path, message in validation_problems(err):
        location = ": ".join(part for part in (where, path) if part)
        lines.append(f"{location}: {message}" if location else message)
    return "; ".join(lines)


class ConfigModel(BaseModel):
    """Base of every settings object: frozen, unknown keys refused, JSON round trip."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def __init__(self, **data: Any) -> None:
        # Built in Python (``HeadConfig(num_heads=3)``), a bad value is a ConfigError
        # naming the model and field, as from a file.
        try:
            super().__init__(**data)
        except ValidationError as err:
            error = ConfigError(describe_validation_error(err, type(self).__name__))
            error.problems = validation_problems(err)  # for an enclosing model's message
            raise error from None

    @classmethod
    def from_dict(cls: type[C], data: Any, where: str = "") -> C:
        """Validate ``data`` (a mapping, or None for every default)."""
        if data is None:
            data = {}
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            label = where or cls.__name__
            raise ConfigError(f"{label}: expected a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, where)) from None

    @classmethod
    def load(cls: type[C], path: str | os.PathLike) -> C:
        """Read a YAML (or JSON, a subset of YAML) file of this model's settings."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read {path}: {err}") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def load_with_overrides(
        cls: type[C], path: str | os.PathLike, what: str, **overrides: Any
    ) -> C:
        """Read the YAML mapping at ``path`` (``what`` names the file in errors, e.g.
        ``"benchmark config"``), ``overrides`` (non-None values) replacing its keys."""
        import yaml

        source = Path(path)
        where = f"{what} {source}"
        try:
            raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where} not found") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{where}: invalid YAML: {err}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(raw, where=where)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists, paths strings)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def replace(self: C, **changes: Any) -> C:
        """A validated copy with ``changes`` (unlike ``model_copy``, which validates nothing)."""
        return type(self).from_dict({**self.model_dump(), **changes})


def check_unique(named: dict[str, list[str]]) -> None:
    """For a model validator: ValueError when a list of ``named`` (``{what: names}``,
    ``what`` singular, e.g. ``"dataset name"``) repeats a name."""
    for what, names in named.items():
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{what}s must be unique; repeated: {', '.join(repeated)}")


def convert_value(value: str, annotation: Any, where: str) -> Any:
    """A command-line string read as ``annotation`` with pydantic's own conversion
    (``"0.05"`` → float, ``"yes"`` → bool, a ``Literal`` choice, a path); ``none`` or
    ``null`` give None where the annotation admits it."""
    adapter = TypeAdapter(annotation)
    if value.strip().lower() in NONE_STRINGS:
        try:
            return adapter.validate_python(None)
        except ValidationError:
            pass
    try:
        return adapter.validate_python(value)
    except ValidationError as err:
        reasons = "; ".join(message for _, message in validation_problems(err))
        raise ConfigError(f"{where}: cannot read {value!r}: {reasons}") from None
