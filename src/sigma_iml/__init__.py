"""sigma-iml: pixel-accurate masks of what an image editor changed (the SIGMA method)."""

from ._version import __version__

__all__ = ["__version__"]
