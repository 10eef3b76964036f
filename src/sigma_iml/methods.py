"""The method interface shared by baselines and models, and the method registry.

A method turns decoded pairs into per-pixel probabilities of "semantically edited" at
the edited image's size. Methods are named on the command line as
``NAME[:key=value,...]`` (e.g. ``pixdiff-fixed:tau=0.05``) and built by :data:`METHODS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .data.pair import Pair
from .registry import Registry, Spec

#: Threshold turning probabilities into the binary mask, as IMDL-BenCo scores (``> 0.5``).
MASK_THRESHOLD = 0.5
#: Web-IML's QES bounds, ``#(p > 15/16) / #(p > 1/16)``: read by the annotation's quality
#: scores and training's pseudo-label filter alike (docs/design.md "Quality scores").
QES_HIGH = 15.0 / 16.0
QES_LOW = 1.0 / 16.0


@dataclass
class Prediction:
    """What a method returns for one pair."""

    #: ``(H, W)`` float32 probabilities in [0, 1] at the edited image's size.
    probability: np.ndarray
    #: Method-specific extras: parsed instruction, intermediate maps, confidence, timings.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return self.probability > MASK_THRESHOLD


class MaskMethod:
    """Base class of every method. Subclasses set ``name``, take typed keyword
    parameters in ``__init__`` (they become ``NAME:key=value`` on the command line) and
    implement :meth:`predict_batch`."""

    name: ClassVar[str] = "method"
    #: How many pairs the caller should group per :meth:`predict_batch` call.
    batch_size: int = 1

    def params(self) -> dict[str, Any]:
        """The parameters this instance was built with (for result tables)."""
        return {}

    def spec(self) -> str:
        return str(Spec(self.name, {k: str(v) for k, v in self.params().items()}))

    def predict_batch(self, pairs: Sequence[Pair]) -> list[Prediction]:
        raise NotImplementedError

    def predict(self, pair: Pair) -> Prediction:
        return self.predict_batch([pair])[0]


METHODS: Registry[MaskMethod] = Registry("method")

# Modules whose import registers methods. A module that needs an optional dependency
# registers nothing when that dependency is absent, and says so when used.
_METHOD_MODULES = ("sigma_iml.baselines.pixdiff", "sigma_iml.inference.method")
_loaded = False


def _load_builtin_methods() -> None:
    global _loaded
    if _loaded:
        return
    for module in _METHOD_MODULES:
        importlib.import_module(module)
    _loaded = True


def build_method(spec: str, **overrides: Any) -> MaskMethod:
    """Build a registered method from ``NAME[:key=value,...]``."""
    _load_builtin_methods()
    return METHODS.build(spec, **overrides)


def method_names() -> list[str]:
    _load_builtin_methods()
    return METHODS.names()
