"""Named registries with typed parameters, parsed from ``NAME[:key=value,...]`` specs.

A registered factory is a class (or function) whose keyword parameters carry type
annotations; a spec's string values are converted with those annotations by
:func:`sigma_iml.config.convert_value` (the package's one conversion system), unknown
names and keys get a "did you mean" hint (IMDL-BenCo's registry does the same).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .config import convert_value
from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Spec:
    """A parsed ``NAME[:key=value,...]`` string; values are still strings."""

    name: str
    params: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Spec:
        text = text.strip()
        name, _, rest = text.partition(":")
        name = name.strip()
        if not name:
            raise ConfigError(f"empty name in spec {text!r}")
        params: dict[str, str] = {}
        if rest.strip():
            for part in rest.split(","):
                key, eq, value = part.partition("=")
                key = key.strip()
                if not eq or not key:
                    raise ConfigError(f"spec {text!r}: expected key=value, got {part!r}")
                if key in params:
                    raise ConfigError(f"spec {text!r}: parameter {key!r} given twice")
                params[key] = value.strip()
        return cls(name=name, params=params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params.items())


class Registry(Generic[T]):
    """Maps names to factories; builds objects from specs."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}

    def register(
        self, name: str, help: str | None = None
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and self._factories[name] is not factory:
                raise ConfigError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            doc = help or inspect.getdoc(factory) or ""
            self._help[name] = doc.strip().splitlines()[0] if doc.strip() else ""
            return factory

        return decorator

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._factories))

    def names(self) -> list[str]:
        return sorted(self._factories)

    def describe(self, name: str) -> str:
        return self._help.get(name, "")

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._factories, n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(self.names()) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}.{hint} Known: {known}") from None

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        factory = self.get(name)
        signature = inspect.signature(factory)
        return {
            key: p
            for key, p in signature.parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and key != "self"
        }

    def build(self, spec: str | Spec, **overrides: Any) -> T:
        """Build from ``NAME[:key=value,...]``; ``overrides`` are already typed values."""
        parsed = spec if isinstance(spec, Spec) else Spec.parse(spec)
        factory = self.get(parsed.name)
        params = self.parameters(parsed.name)
        try:
            hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
        except Exception:  # pragma: no cover - unresolvable annotations
            hints = {}
        kwargs: dict[str, Any] = {}
        for key, raw in parsed.params.items():
            if key not in params:
                close = difflib.get_close_matches(key, params, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{self.kind} {parsed.name!r} has no parameter {key!r}.{hint} "
                    f"Parameters: {', '.join(params) or '(none)'}"
                )
            annotation = hints.get(key, params[key].annotation)
            if annotation is inspect.Parameter.empty:
                annotation = str
            kwargs[key] = convert_value(raw, annotation, f"{parsed.name}:{key}")
        kwargs.update(overrides)
        try:
            return factory(**kwargs)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{self.kind} {str(parsed)!r}: {err}") from err
