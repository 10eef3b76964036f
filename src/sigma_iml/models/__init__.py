"""The SIGMA network (paper §3.2), its config and its checkpoints.

Modules: ``config`` (typed config), ``backbone`` (frozen DINOv2), ``difference`` (MSDB),
``refinement`` (DRB), ``fusion`` (instruction evidence, BCMR, consensus), ``decoder``
(FPN + mask head), ``sigma`` (``SigmaNet``) and ``checkpoint`` (safetensors + JSON).
Running a checkpoint over pairs is :mod:`sigma_iml.inference`; tiny random models for
tests are :mod:`sigma_iml.testing`.

Names are imported lazily so that ``import sigma_iml.models`` does not pull in torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        ".config": ("SigmaConfig", "BackboneConfig", "HeadConfig"),
        ".backbone": ("DinoBackbone",),
        ".sigma": ("SigmaNet", "SigmaHead", "SigmaOutput"),
        ".checkpoint": (
            "save_checkpoint",
            "load_checkpoint",
            "CheckpointError",
            "instruction_settings",
        ),
    },
)
