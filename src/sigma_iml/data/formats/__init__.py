"""Dataset formats: one module per layout, each registering its reader (and sniffer) in
:data:`~sigma_iml.data.formats.base.DATASET_FORMATS` when imported.

=============  ===================================================================
name           layout
=============  ===================================================================
manifest       JSONL/CSV manifest of (original, edited, instruction, mask) paths
folder         ``original/``, ``edited/``, optional ``mask/``, paired by file stem
imdlbenco      IMDL-BenCo's JsonDataset list
cocoglide      the CocoGlide benchmark (``table.csv``, ``real/``, ``fake/``, ``mask/``)
autosplice     the AutoSplice benchmark (``Forged_JPEG*/``, ``Mask/``, ``Caption/``)
brgen          BR-Gen (``RealImage/`` lists; originals from the user's COCO/ImageNet/Places)
magicbrush     the MagicBrush benchmark (Hugging Face parquet)
deal300k       the DEAL-300K benchmark (extracted archives + ``instructions/``)
opensdi        the OpenSDI benchmark (Hugging Face parquet)
parquet        any corpus stored as Hugging Face parquet, columns given by a preset
webdataset     WebDataset tar shards
=============  ===================================================================

Detection (:func:`sigma_iml.data.readers.detect_format`) asks the sniffers in
:data:`DETECTION_ORDER` and takes the first that accepts the path; the order is decided
here, not by which module happens to be imported first. The rules behind it:

1. Formats named by a file of their own come first: a manifest beats the folder layout,
   so a ``make-pairs`` output folder (which has both) reads through its manifest.
2. The benchmark layouts come before the generic readers: MagicBrush and OpenSDI are
   parquet too, and must be read with their own pairing and mask rules.
3. The generic ``parquet`` and ``webdataset`` readers come last.

Rules every reader follows: it streams (folders are listed by name, parquet files read a
batch of rows at a time, tar shards a member at a time, images handed on encoded); a row
that cannot be understood becomes :meth:`~sigma_iml.data.pair.PairRef.invalid` with a
message naming the row, while missing or corrupt image files are reported when
:func:`~sigma_iml.data.pair.load_pair` decodes them; paths in a listing may not leave the
dataset folder (:func:`~sigma_iml.data.formats.base.inside_dataset`); ids are unique
within one read and stable across reads. The layouts are described in
``docs/corpora.md`` and ``docs/benchmarks.md``.
"""

from __future__ import annotations

from . import (  # noqa: F401  (each module registers its format when imported)
    autosplice,
    brgen,
    cocoglide,
    deal300k,
    folder,
    imdlbenco,
    magicbrush,
    manifest,
    opensdi,
    parquet,
    webdataset,
)
from .base import DATASET_FORMATS, DatasetFormat, register_format

#: The order in which format sniffers are asked; see the module docstring for why.
DETECTION_ORDER: tuple[str, ...] = (
    "manifest",
    "folder",
    "imdlbenco",
    "cocoglide",
    "autosplice",
    "brgen",
    "magicbrush",
    "deal300k",
    "opensdi",
    "parquet",
    "webdataset",
)


def formats_in_detection_order() -> list[DatasetFormat]:
    """Every registered format: those of :data:`DETECTION_ORDER` in that order, then any
    registered by other code, in the order they were registered."""
    ranked = [DATASET_FORMATS[name] for name in DETECTION_ORDER]
    return ranked + [f for name, f in DATASET_FORMATS.items() if name not in DETECTION_ORDER]


__all__ = [
    "DATASET_FORMATS",
    "DETECTION_ORDER",
    "DatasetFormat",
    "formats_in_detection_order",
    "register_format",
]
