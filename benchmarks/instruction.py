"""Time the instruction parsers on this machine.

    python benchmarks/instruction.py --json OUT.json [--repeats 5] [--skip-llm]

Writes:

- ``rules_us_per_instruction``: the rule parser over the labelled set
  (``tests/data/instructions_labelled.jsonl``), microseconds per instruction;
- ``cache_hit_us``: one cached lookup through ``CachedParser`` (sqlite3, WAL);
- ``llm_build_seconds`` / ``llm_seconds``: the real Qwen2.5-0.5B-Instruct configuration
  with random weights (no download: the config is written here) and a byte-level
  tokenizer with the paper's system prompt, one instruction, greedy, 40 new tokens
  forced (random weights would stop at once or never).

Times are the best of ``--repeats`` after a warm-up (medians written too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeats: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-llm", action="store_true")
    args = parser.parse_args()

    from sigma_iml.instruction.cache import InstructionCache
    from sigma_iml.instruction.parser import CachedParser
    from sigma_iml.instruction.rules import RuleParser, parse_rules

    rows = [
        json.loads(line)["instruction"]
        for line in (ROOT / "tests/data/instructions_labelled.jsonl").read_text().splitlines()
    ]
    report: dict = {"instructions": len(rows)}
    best, median = _best(lambda: [parse_rules(text) for text in rows], args.repeats)
    report["rules_us_per_instruction"] = 1e6 * best / len(rows)
    report["rules_us_per_instruction_median"] = 1e6 * median / len(rows)

    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedParser(RuleParser(), InstructionCache(Path(tmp) / "cache.sqlite"))
        cached.parse_detailed(["remove the cat"])
        best, median = _best(lambda: cached.parse_detailed(["remove the cat"]), args.repeats * 20)
        report["cache_hit_us"], report["cache_hit_us_median"] = 1e6 * best, 1e6 * median

        if not args.skip_llm:
            from sigma_iml.instruction.llm import LLMParser
            from sigma_iml.testing import tiny_qwen2_tokenizer, write_qwen2

            start = time.perf_counter()
            # Qwen2.5-0.5B-Instruct's sizes; the vocabulary is the tiny tokenizer's.
            tokenizer = tiny_qwen2_tokenizer()
            folder = write_qwen2(
                Path(tmp) / "qwen-0.5b-random",
                size="paper",
                tokenizer=tokenizer,
                vocab_size=len(tokenizer),
            )
            report["llm_build_seconds"] = time.perf_counter() - start
            llm = LLMParser(str(folder), max_new_tokens=40, retries=0, local_files_only=True)
            llm._load()[0].generation_config.eos_token_id = None  # force 40 new tokens
            best, median = _best(lambda: llm.parse_detailed(["remove the cat"]), args.repeats)
            report["llm_seconds"], report["llm_seconds_median"] = best, median
            report["llm_device"] = str(llm.device)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
