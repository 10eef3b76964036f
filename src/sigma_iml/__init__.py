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

from ._lazy import lazy_getattr
from ._version import __version__

_EXPORTS = {
    "Annotator": ".inference.annotator",
    "build_method": ".methods",
    "method_names": ".methods",
    "open_dataset": ".data.readers",
    "load_pair": ".data.pair",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
