"""Edit faithfulness: what was asked, what changed, and what changed that nobody asked
for (docs/faithfulness.md).

:func:`split` divides a change mask by an intent region into intended change, side
effect and not executed, with scores; :class:`FaithfulnessAnalysis` runs it per pair in
``annotate --faithfulness``; :func:`summarise` totals a run's records per source and edit
type.
"""

from .analysis import MASK_FIELDS, RECORD_FIELD, FaithfulnessAnalysis
from .intent import INTENT_SOURCES, binarise_intent_map, mask_intent
from .split import FaithfulnessSettings, FaithfulnessSplit, split
from .summary import summarise

__all__ = [
    "INTENT_SOURCES",
    "MASK_FIELDS",
    "RECORD_FIELD",
    "FaithfulnessAnalysis",
    "FaithfulnessSettings",
    "FaithfulnessSplit",
    "binarise_intent_map",
    "mask_intent",
    "split",
    "summarise",
]
