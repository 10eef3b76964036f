#!/usr/bin/env bash
# Create .venv (if missing) and install sigma-iml into it, torch first.
#
# torch comes first so that nothing else pulls a different build: by default
# `torch==2.13.0` (on this project's CPU machines a local CPU wheel; from PyPI on Linux
# the CUDA build). A GPU user who wants another build installs it into .venv first, or
# sets SIGMA_TORCH (e.g. SIGMA_TORCH="torch --index-url https://download.pytorch.org/whl/cu128");
# an already installed torch is kept, and pinned while the rest installs.
#
# Usage: bash scripts/setup.sh [EXTRAS]     e.g. EXTRAS=dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
# This workplace's pip configuration names local index folders that do not all exist;
# pip warns about each one. Drop those lines, keep everything else pip says.
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }; }
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    # shellcheck disable=SC2086
    quiet "${pip[@]}" install ${SIGMA_TORCH:-torch==2.13.0}
fi
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
.venv/bin/python -c "import torch; print('torch==' + torch.__version__)" > "$constraints"
target="."
[ -n "$extras" ] && target=".[$extras]"
quiet "${pip[@]}" install -c "$constraints" -e "$target"
