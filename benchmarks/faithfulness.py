"""Measure the faithfulness split against generated ground truth.

    python benchmarks/faithfulness.py [--n 200] [--seed 0] [--side-effects 0.5]
        [-m pixdiff-fixed:tau=0.05,resolution=native] [--noise 0] [--out DIR] [--json OUT]

Generates ``--n`` pairs with ``make-pairs --side-effects P`` (noise-free by default),
annotates them with the change detector ``-m`` and ``--faithfulness --intent mask`` (the
generator's intended regions), and compares each record with the manifest's truth:

- ``flag_recall``: pairs with a side effect flagged ``side_effect``;
- ``false_flag_rate``: pairs without one flagged all the same;
- ``side_effect_f1`` / ``side_effect_iou``: the written ``side_effect_mask`` against the
  true one, per pair then averaged over the pairs with a side effect (IMDL-BenCo's
  per-image definition), and ``side_effect_f1_micro`` over all pixels of all pairs;
- ``not_executed_flags``: pairs flagged ``not_executed`` (every generated edit was
  carried out, so each one is a false flag).

The same numbers come from the CLI: ``sigma-iml make-pairs --side-effects 0.5``, then
``sigma-iml annotate --faithfulness --intent mask`` (docs/faithfulness.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from sigma_iml.annotation import annotate
from sigma_iml.data.images import load_mask
from sigma_iml.data.readers import open_dataset
from sigma_iml.data.synth import make_pairs
from sigma_iml.faithfulness import FaithfulnessAnalysis


def measure(out: Path, n: int, seed: int, side_effects: float, method: str, noise: float) -> dict:
    manifest = make_pairs(out / "pairs", n, seed, noise, side_effects=side_effects)
    truth = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        truth[row["id"]] = row
    run = out / "run"
    summary = annotate(
        open_dataset(manifest),
        method,
        run,
        analyses=[FaithfulnessAnalysis("mask")],
        progress=False,
    )
    positives = flagged = negatives = false_flags = not_executed = 0
    f1s, ious = [], []
    tp = fp = fn = 0
    for shard in sorted((run / "shards").iterdir()):
        for line in (shard / "records.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["status"] != "ok":
                continue
            row = truth[record["id"]]
            result = record["faithfulness"]
            not_executed += bool(result["not_executed"])
            true_mask = load_mask(manifest.parent / row["side_effect_mask"])
            predicted = load_mask(run / result["side_effect_mask"])
            a, b, c = (
                int((predicted & true_mask).sum()),
                int((predicted & ~true_mask).sum()),
                int((~predicted & true_mask).sum()),
            )
            tp, fp, fn = tp + a, fp + b, fn + c
            if row["side_effect"] is not None:
                positives += 1
                flagged += bool(result["side_effect"])
                f1s.append(2 * a / (2 * a + b + c + 1e-8))
                ious.append(a / (a + b + c + 1e-8))
            else:
                negatives += 1
                false_flags += bool(result["side_effect"])
    return {
        "n": n,
        "seed": seed,
        "side_effects": side_effects,
        "noise": noise,
        "method": summary.method,
        "intent": "mask",
        "annotated": summary.done,
        "failed": summary.failed,
        "with_side_effect": positives,
        "without_side_effect": negatives,
        "flagged": flagged,
        "flag_recall": round(flagged / positives, 4) if positives else None,
        "false_flags": false_flags,
        "false_flag_rate": round(false_flags / negatives, 4) if negatives else None,
        "side_effect_f1": round(float(np.mean(f1s)), 4) if f1s else None,
        "side_effect_iou": round(float(np.mean(ious)), 4) if ious else None,
        "side_effect_f1_micro": round(2 * tp / (2 * tp + fp + fn + 1e-8), 4),
        "not_executed_flags": not_executed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side-effects", type=float, default=0.5)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("-m", "--method", default="pixdiff-fixed:tau=0.05,resolution=native")
    parser.add_argument("--out", type=Path, default=None, help="Keep pairs and run here.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        result = measure(out, args.n, args.seed, args.side_effects, args.method, args.noise)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
