"""Inference with a trained SIGMA network: the :class:`Annotator` (pairs in, masks and
probability maps out) and the registered ``sigma`` method (instruction branch, then the
network), which ``evaluate``, ``annotate`` and ``benchmark`` run.

Modules: ``annotator`` (batched forward passes, device and precision from
:mod:`sigma_iml.device`) and ``method`` (``sigma:checkpoint=PATH,...``).

Names are imported lazily so that ``import sigma_iml.inference`` does not pull in torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        ".annotator": ("Annotator", "Annotation", "PairInput"),
        ".method": ("SigmaMethod", "PARSER_STAGES"),
    },
)
