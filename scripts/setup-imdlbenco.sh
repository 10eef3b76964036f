#!/usr/bin/env bash
# Create .venv-imdlbenco: IMDL-BenCo's own package (`imdlbenco` from PyPI) in a venv of its
# own, so that its pins never touch .venv. tests/annotation/test_imdlbenco_export.py loads
# our export with IMDL-BenCo's JsonDataset through this venv, and skips when it is absent.
#
# torch goes in first (same rule as scripts/setup.sh: `torch==2.13.0`, or SIGMA_TORCH), then
# imdlbenco under a constraint pinning that torch, so that pip cannot swap in another torch
# build. The script fails if importing IMDL-BenCo's JsonDataset fails afterwards.
#
# With a CPU torch, the torchvision that imdlbenco pulls (through albumentations) cannot
# load its compiled operators (its _C.so links torch's CUDA libraries), and importing
# torchvision then fails in torchvision._meta_registrations. JsonDataset uses none of
# those operators, so the check below (and the test) stand in an empty module for
# torchvision._meta_registrations; IMDL-BenCo's own dataset code runs unchanged.
#
# Usage: bash scripts/setup-imdlbenco.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv=.venv-imdlbenco
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# This workplace's pip configuration names local index folders that do not all exist;
# pip warns about each one. Drop those lines, keep everything else pip says.
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }; }
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    # shellcheck disable=SC2086
    quiet "${pip[@]}" install ${SIGMA_TORCH:-torch==2.13.0}
fi
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$venv/bin/python" -c "import torch; print('torch==' + torch.__version__)" > "$constraints"
quiet "${pip[@]}" install -c "$constraints" imdlbenco
"$venv/bin/python" - <<'EOF'
import sys
import types

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
from IMDLBenCo.datasets import JsonDataset  # noqa: E402,F401

print("IMDL-BenCo JsonDataset importable")
EOF
