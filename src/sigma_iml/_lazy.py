"""Lazy public names for a package: its ``__getattr__`` imports the module a name comes
from on first use, so that importing the package stays cheap (no torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that resolves each name of ``exports``
    from the module it maps to (relative to ``package``, e.g. ``".annotator"``) and
    raises :class:`AttributeError` for any other name."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__


def lazy_exports(
    package: str, modules: dict[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any]]:
    """``__all__`` and ``__getattr__`` for ``package``, whose public names are listed by
    the module that defines them (``{".annotator": ("Annotator", ...)}``): each module
    is named once, and each name is imported from it on first use."""
    exports = {name: module for module, names in modules.items() for name in names}
    return sorted(exports), lazy_getattr(package, exports)
