"""sigma-iml: pixel-accurate masks of what an image editor changed (the SIGMA method).

The public Python names, imported on first use so that ``import sigma_iml`` stays cheap:

- :class:`Annotator` (:mod:`sigma_iml.inference`): a SIGMA checkpoint over pairs;
- :func:`build_method`, :func:`method_names` (:mod:`sigma_iml.methods`): a registered
  method from ``NAME[:key=value,...]``;
- :func:`open_dataset` (:mod:`sigma_iml.data.readers`), :func:`load_pair`
  (:mod:`sigma_iml.data.pair`): the pairs of a dataset, decoded;
- ``__version__``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

_EXPORTS = {
    "Annotator": "sigma_iml.inference.annotator",
    "build_method": "sigma_iml.methods",
    "method_names": "sigma_iml.methods",
    "open_dataset": "sigma_iml.data.readers",
    "load_pair": "sigma_iml.data.pair",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
