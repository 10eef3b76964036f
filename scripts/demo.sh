#!/usr/bin/env bash
# Set up .venv and run the main job on pairs the project generates from real photos:
# generate edited pairs (with diffusion-like re-synthesis noise), annotate them (masks,
# records, IMDL-BenCo listing), and score the pixel-difference baselines.
# Output goes to ./demo (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-demo}"
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
sigma=.venv/bin/sigma-iml
"$sigma" make-pairs --out "$out/pairs" --n 40 --seed 0 --noise 0.5
"$sigma" annotate --data "$out/pairs" --method pixdiff-otsu --out "$out/annotate"
"$sigma" evaluate --data "$out/pairs" \
    -m pixdiff-fixed:tau=0.05 -m pixdiff-fixed:tau=0.1 -m pixdiff-fixed:tau=0.2 \
    -m pixdiff-morph -m pixdiff-otsu \
    --json "$out/evaluate.json" --csv "$out/evaluate.csv"
echo "masks: $out/annotate/shards/*/masks  IMDL-BenCo listing: $out/annotate/imdlbenco.json  table: $out/evaluate.csv"
