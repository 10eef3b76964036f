#!/usr/bin/env bash
# Set up .venv with the dev extras and run the test suite (what CI runs).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k readers`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
.venv/bin/python -m pytest "$@"
