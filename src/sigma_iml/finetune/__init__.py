"""Downstream: fine-tune IML detectors on an annotate run with IMDL-BenCo (docs/finetune.md).

IMDL-BenCo runs in its own venv; :mod:`.driver` is the only file that runs there, and
:mod:`.runner` starts it. :mod:`.table2` fine-tunes several detectors and writes the
paper's Table 2 layout.
"""

from .models import DEFAULT_MODEL, PRESETS, DetectorPreset
from .runner import FinetuneError, FinetuneOptions, TestSet, finetune, imdlbenco_python
from .table2 import Table2Config, load_table2_config, run_table2

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "DetectorPreset",
    "FinetuneError",
    "FinetuneOptions",
    "Table2Config",
    "TestSet",
    "finetune",
    "imdlbenco_python",
    "load_table2_config",
    "run_table2",
]
