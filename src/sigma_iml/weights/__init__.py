"""The hub models the pipeline uses: a typed catalogue (``sigma-iml weights list``) and an
offline weights folder (``sigma-iml weights download --to DIR``, read back through
``--weights DIR`` / ``SIGMA_WEIGHTS`` by :mod:`sigma_iml.hub`)."""

from .catalogue import CATALOGUE, HubModel, models_for_checkpoint
from .download import WEIGHTS_MANIFEST, download_weights, folder_checksums

__all__ = [
    "CATALOGUE",
    "HubModel",
    "WEIGHTS_MANIFEST",
    "download_weights",
    "folder_checksums",
    "models_for_checkpoint",
]
