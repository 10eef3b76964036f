"""Bulk annotation: per-stage time of one pair, pipeline overhead, and scaling.

    .venv/bin/python benchmarks/bulk.py [--method pixdiff-otsu] [--sizes 100,1000,10000]
        [--json OUT] [--tiny DIR]

    # SIGMA with the tiny random models (written to DIR first when missing):
    .venv/bin/python benchmarks/bulk.py --tiny DIR \
        --method sigma:checkpoint=DIR/sigma,parser=rules,device=cpu --sizes 100,1000,3000

1. **Stages of one pair** (median over ``--repeat`` pairs): decode, the model stages,
   quality score, write. A method reports its own model stages by returning
   ``Prediction.extras["timings"]`` (seconds per stage; ``sigma`` reports ``backbone``,
   ``head``, ``network``, ``parse`` and which parser it was, ``ground``, ``fuse``);
   stages of the SIGMA pipeline that the method does not report (a pixel baseline has
   none; ``sigma:parser=rules`` has no LLM parse or cache hit) are listed as "not
   reported".
2. **Pipeline vs stages**: the engine's wall time per pair against the sum of the stage
   medians (target: overhead <= 20%). Decoding and writing overlap the model in the
   engine, so the pipeline can beat the sum.
3. **Scaling**: pairs per second and peak RSS at each ``--sizes`` count, each in a fresh
   subprocess (peak RSS is per process). The pairs are ``make_pairs`` output: 100 distinct
   generated pairs, listed again under new ids to reach larger counts, so every pair is
   decoded, predicted and written like a new one while generation time stays out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The SIGMA stages as ``sigma``'s ``extras["timings"]`` names them.
SIGMA_STAGES = ("backbone", "parser_llm", "parser_rules", "parser_cache_hit", "ground", "head")
DISTINCT_PAIRS = 100


def _refs(manifest: Path, n: int):
    from sigma_iml.data.formats.manifest import iter_manifest
    from sigma_iml.data.pair import PairRef

    base = list(iter_manifest(manifest))
    for i in range(n):
        ref = base[i % len(base)]
        yield PairRef(
            id=f"{ref.id}-{i}",
            original=ref.original,
            edited=ref.edited,
            instruction=ref.instruction,
            mask=ref.mask,
            source=ref.source,
        )


def stage_table(manifest: Path, method_spec: str, repeat: int) -> dict:
    """Median seconds per stage for one pair."""
    from sigma_iml.annotation.quality import quality_scores
    from sigma_iml.annotation.records import ItemWriter
    from sigma_iml.data.pair import load_pair
    from sigma_iml.methods import build_method

    method = build_method(method_spec)
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        writer = ItemWriter(Path(tmp), method.spec())
        for i, ref in enumerate(_refs(manifest, repeat)):
            start = time.perf_counter()
            pair = load_pair(ref)
            samples.setdefault("decode", []).append(time.perf_counter() - start)
            start = time.perf_counter()
            prediction = method.predict_batch([pair])[0]
            samples.setdefault("model (whole method)", []).append(time.perf_counter() - start)
            for stage, seconds in (prediction.extras.get("timings") or {}).items():
                samples.setdefault(f"  {stage}", []).append(float(seconds))
            start = time.perf_counter()
            quality_scores(prediction.probability)
            samples.setdefault("quality score", []).append(time.perf_counter() - start)
            start = time.perf_counter()
            writer.write(ref, pair, prediction, i, 0, {})
            # write() scores quality too; report the files alone.
            samples.setdefault("write (mask PNG + fsync)", []).append(
                time.perf_counter() - start - samples["quality score"][-1]
            )
    medians = {k: statistics.median(v) for k, v in samples.items()}
    reported = {k.strip() for k in medians}
    missing = [s for s in SIGMA_STAGES if s not in reported]
    return {"medians": medians, "not_reported": missing}


def pipeline(manifest: Path, method_spec: str, n: int, workers: int) -> dict:
    from sigma_iml.annotation.local_engine import LocalEngine
    from sigma_iml.annotation.runner import annotate

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = annotate(
            _refs(manifest, n),
            method_spec,
            Path(tmp) / "run",
            engine=LocalEngine(workers=workers),
            progress=False,
        )
        wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_kib = usage.ru_maxrss
    return {
        "n": n,
        "done": summary.done,
        "failed": summary.failed,
        "seconds": wall,
        "pairs_per_second": n / wall,
        "peak_rss_mib": peak_kib / 1024,
        # CPU seconds of this process (all threads, model loading included) per pair:
        # less sensitive than wall time to other work sharing the machine.
        "cpu_seconds_per_pair": (usage.ru_utime + usage.ru_stime) / n,
        "stage_seconds": summary.stage_seconds,
        # Other work on the machine slows a run down: the 1-minute load average at its
        # start and end (the run itself adds up to its decode threads + 1).
        "load_average": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="pixdiff-otsu")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pairs", type=Path, help="make_pairs folder to reuse")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--tiny",
        type=Path,
        help="write the tiny SIGMA models here first (when missing), for --method sigma:...",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.pairs is None:
        args.pairs = Path(tempfile.mkdtemp(prefix="sigma-bulk-")) / "pairs"
    manifest = args.pairs / "manifest.jsonl"
    if args.child is not None:  # one scaling point, in its own process
        print(json.dumps(pipeline(manifest, args.method, args.child, args.workers)))
        return
    if args.tiny is not None and not (args.tiny / "sigma" / "config.json").is_file():
        from sigma_iml.testing import write_tiny_pipeline

        write_tiny_pipeline(args.tiny)
    if not manifest.is_file():
        from sigma_iml.data.synth import make_pairs

        make_pairs(args.pairs, n=DISTINCT_PAIRS, seed=0, noise=0.5)

    stages = stage_table(manifest, args.method, args.repeat)
    print(f"## Stages of one pair ({args.method}, median of {args.repeat}, ms)")
    for name, seconds in stages["medians"].items():
        print(f"| {name} | {seconds * 1000:.2f} |")
    for name in stages["not_reported"]:
        print(f"| {name} | not reported |")
    stage_sum = sum(v for k, v in stages["medians"].items() if not k.startswith("  "))

    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--method", args.method, "--pairs", str(args.pairs)]
        command += ["--workers", str(args.workers), "--child", str(n)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(
            f"n={n}: {r['pairs_per_second']:.1f} pairs/s, {r['seconds']:.1f} s, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB, load average {r['load_average']}",
            flush=True,
        )
    per_pair = results[-1]["seconds"] / results[-1]["n"]
    print(
        f"pipeline {per_pair * 1000:.2f} ms/pair vs sum of stages {stage_sum * 1000:.2f} ms "
        f"(overhead {100 * (per_pair / stage_sum - 1):+.1f}%)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"method": args.method, "stages": stages, "stage_sum": stage_sum, "runs": results},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
