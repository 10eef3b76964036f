#!/usr/bin/env bash
# Set up .venv with the dev extras and run the test suite (what CI runs).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k readers`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,ray
# IMDL-BenCo in a venv of its own (its pins clash with ours): the export test loads our
# IMDL-BenCo listing with its JsonDataset.
bash scripts/setup-imdlbenco.sh
# The report's browser test drives Debian's headless Chromium (no browser download);
# install it when we may (root with apt), else that one test skips.
if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
.venv/bin/python -m pytest "$@"
