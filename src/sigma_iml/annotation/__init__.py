"""Bulk annotation: masks for every pair of a dataset, sharded and resumable
(docs/annotation.md). :func:`annotate` is the entry point; what it writes is an
:class:`AnnotateOptions`, how it computes is an engine (:class:`LocalEngine`,
:class:`RayEngine`)."""

from .local_engine import LocalEngine
from .options import AnnotateOptions
from .ray_engine import RayEngine
from .runner import AnnotationSummary, annotate

__all__ = ["AnnotateOptions", "AnnotationSummary", "LocalEngine", "RayEngine", "annotate"]
