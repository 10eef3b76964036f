"""What an annotation run writes, resumes and exports: the same for every engine.

How the pairs are computed (in this process, on Ray) is the engine's business and its
settings live on the engine (:class:`~.local_engine.LocalEngine`,
:class:`~.ray_engine.RayEngine`).
"""

from __future__ import annotations

from pydantic import Field

from ..config import ConfigModel
from .quality import DEFAULT_QUALITY_METRIC, QualityMetric


class AnnotateOptions(ConfigModel):
    #: Run the pairs that failed in an earlier run again (finished ones stay skipped).
    retry_failed: bool = False
    #: Also write 8-bit probability maps (``probabilities/``).
    save_probability: bool = False
    #: Keep PNG copies of originals that came as bytes (Parquet, tar), for ``negatives``.
    save_originals: bool = False
    #: Write the instruction branch's panel (the paper's Fig. 7) of methods that give one.
    save_intermediates: bool = False
    #: Pairs per model call (default: the method's own batch size).
    batch_size: int | None = Field(default=None, ge=1)
    #: Pairs per shard folder for a new run (default 10,000); a resumed run keeps its own.
    shard_size: int | None = Field(default=None, ge=1)
    #: Leave pairs whose ``quality_metric`` is below this out of the exports. NaN would
    #: let no pair through, silently, so it is refused (as is infinity).
    min_quality: float | None = Field(default=None, allow_inf_nan=False)
    quality_metric: QualityMetric = DEFAULT_QUALITY_METRIC
    #: Add the originals to ``imdlbenco.json`` as ``[original, "Negative"]`` rows.
    negatives: bool = False
