"""SIGMA at the paper's model sizes: the time of one pair per stage, and the whole
``annotate`` pipeline against the sum of its stages.

    .venv/bin/python benchmarks/pipeline.py [--json OUT] [--repeats 2] [--keep DIR]
        [--size 512x384] [--device cpu] [--tiny]

1. **Models** (random weights, written with ``save_pretrained`` into a temporary folder,
   or ``--keep DIR``, which is reused when it already holds them):
   DINOv2-Base (``Dinov2Config`` defaults = ViT-B/14, ``image_size`` 518 as the hub
   config) with a SIGMA head at the paper's configuration (``HeadConfig()`` defaults);
   Qwen2.5-0.5B-Instruct (its hub config: hidden 896, 24 layers, 14 query / 2 KV heads,
   intermediate 4864, vocabulary 151,936, tied embeddings) with a byte-level BPE trained
   here (the real tokenizer cannot be downloaded; see ``prompt_tokens`` in the output);
   GroundingDINO-Base (``IDEA-Research/grounding-dino-base``: Swin-B backbone, embed 128,
   depths 2-2-18-2, window 12; BERT-base text encoder; 900 queries, 6 + 6 layers) with
   the default PIL image processor (shortest edge 800, longest 1333); SAM 2.1 Hiera-S
   (``facebook/sam2.1-hiera-small``: width 96, stages 1-2-11-2, global attention in
   blocks 7, 10, 13) at 1024 px; and ``sigma/instruction.json`` naming them, as
   ``sigma-iml dev tiny-weights`` does for the tiny ones. ``--tiny`` uses those tiny
   models instead (a smoke test of this script in seconds).
2. **Stages of one pair** (a generated ``replace`` edit, so both images are grounded),
   each the median of ``--repeats`` runs after a warm-up call that loads the models:
   decode (``load_pair``); through ``SigmaMethod.predict_batch`` and its
   ``extras["timings"]``: parser (LLM), grounding (GroundingDINO + SAM 2 on both
   images), fuse, backbone, head, and the network's resizing in and out; the parser as
   rules and as a cache hit, timed through the same ``CachedParser`` the branch uses;
   write (mask PNG, quality score, atomic rename, fsync).
3. **Whole pipeline**: ``annotate`` (in-process engine, batch size 1, 2 decode threads)
   over ``--repeats`` copies of the pair under new ids; its wall time per pair against
   the sum of the stages it runs (parser = LLM; target: overhead <= 20%).

A randomly initialised LLM never writes a valid tuple nor an end-of-sequence token, so it
would always generate ``max_new_tokens`` twice (answer, then retry) before falling back
to the rules. A trained parser answers once with a short JSON object; the parser here is
set to that: one attempt of as many tokens as the gold answer to this pair's instruction
has under our tokenizer, plus the end token. The numbers are written with the machine's
load average: on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

#: The stages whose sum the pipeline is compared with, in pipeline order. ``parser_llm``
#: is the parser the pipeline runs; rules and cache hits are reported beside it.
PIPELINE_STAGES = (
    "decode",
    "parser_llm",
    "grounding",
    "fuse",
    "backbone",
    "head",
    "network_resize",
    "write",
)
#: Every stage reported, in table order.
STAGES = (
    "decode",
    "parser_llm",
    "parser_rules",
    "parser_cache_hit",
    "grounding",
    "fuse",
    "backbone",
    "head",
    "network_resize",
    "write",
)
STAGE_LABELS = {
    "decode": "decode (two PNGs)",
    "parser_llm": "parser: LLM (one answer)",
    "parser_rules": "parser: rules",
    "parser_cache_hit": "parser: cache hit",
    "grounding": "grounding (GroundingDINO + SAM 2, both images)",
    "fuse": "fuse (intent map)",
    "backbone": "backbone (DINOv2, both images)",
    "head": "head (incl. decoder)",
    "network_resize": "network resize in/out",
    "write": "write (mask PNG, quality, fsync)",
}

#: Written into a model folder once every model is in it: ``--keep`` reuses it then.
COMPLETE_MARKER = "models-complete.json"
#: Side of the square SAM 2 input of the released checkpoints.
SAM_INPUT_SIZE = 1024
#: Vocabulary of the BPE trained for the Qwen2 tokenizer (the model keeps Qwen's 151,936
#: rows: the embedding and output layer cost what they cost in the real model).
BPE_VOCAB_SIZE = 32_000
#: Characters of stdlib source the BPE is trained on: English docstrings and comments,
#: code punctuation and JSON-like text, enough for merges to resemble a real tokenizer's.
BPE_TRAINING_CHARS = 6_000_000


# -- models ----------------------------------------------------------------------------


def _bpe_training_text() -> list[str]:
    """Python stdlib sources, in sorted order (deterministic), up to the character budget."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        texts.append(text)
        total += len(text)
        if total >= BPE_TRAINING_CHARS:
            break
    return texts


def build_qwen_tokenizer():
    """A byte-level BPE with Qwen's special tokens and ChatML template (see the module
    docstring: token counts differ from the real Qwen tokenizer's)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from sigma_iml.testing import QWEN_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_bpe_training_text(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL_TOKENS[1:],
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


def bert_words() -> list[str]:
    """Detection prompts are a few words ("rocket."): a small WordPiece vocabulary with
    every letter as a continuation piece tokenizes any concept to a realistic handful of
    tokens (the model keeps BERT-base's 30,522 rows)."""
    from sigma_iml.testing import BERT_WORDS

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    return list(dict.fromkeys(list(BERT_WORDS) + letters + [f"##{c}" for c in letters]))


def write_real_models(directory: Path, seed: int = 0) -> dict[str, float]:
    """Every model folder at the paper's sizes (``sigma_iml.testing``, ``size="paper"``)
    and the SIGMA checkpoint; returns seconds per model built."""
    import torch

    from sigma_iml.models.config import BackboneConfig, HeadConfig, SigmaConfig
    from sigma_iml.testing import (
        write_dinov2,
        write_grounding_dino,
        write_pipeline_instruction,
        write_qwen2,
        write_sam2,
        write_sigma_checkpoint,
    )

    def dinov2_and_sigma() -> None:
        dinov2 = write_dinov2(directory / "dinov2", seed=seed, size="paper")
        config = SigmaConfig(backbone=BackboneConfig(name_or_path="../dinov2"), head=HeadConfig())
        write_sigma_checkpoint(directory / "sigma", config, dinov2, seed=seed)

    writers = {
        "dinov2+sigma": dinov2_and_sigma,
        # Stored in bfloat16 as the hub checkpoint is (half the disk); the parser loads
        # it as float32 on a CPU.
        "qwen2": lambda: write_qwen2(
            directory / "qwen2",
            seed=seed,
            size="paper",
            tokenizer=build_qwen_tokenizer(),
            dtype=torch.bfloat16,
        ),
        "grounding-dino": lambda: write_grounding_dino(
            directory / "grounding-dino", seed=seed, size="paper", words=bert_words()
        ),
        "sam2": lambda: write_sam2(directory / "sam2", seed=seed, size="paper"),
    }
    seconds: dict[str, float] = {}
    for name, write in writers.items():
        start = time.perf_counter()
        write()
        seconds[name] = time.perf_counter() - start
    write_pipeline_instruction(directory / "sigma")
    return seconds


def prepare_models(directory: Path, tiny: bool) -> dict[str, Any]:
    """Write the models into ``directory`` unless a complete earlier set is there."""
    marker = directory / COMPLETE_MARKER
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("tiny") == tiny:
            return {**info, "reused": True}
        raise SystemExit(f"{directory} holds the {'tiny' if info.get('tiny') else 'real'} models")
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if tiny:
        from sigma_iml.testing import write_tiny_pipeline

        write_tiny_pipeline(directory)
        per_model: dict[str, float] = {}
    else:
        per_model = write_real_models(directory)
    info = {
        "tiny": tiny,
        "build_seconds": time.perf_counter() - start,
        "build_seconds_per_model": per_model,
        "disk_bytes": sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()),
    }
    marker.write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "reused": False}


# -- measuring -------------------------------------------------------------------------


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        torch.cuda.synchronize()


def _timed(fn, device: str) -> tuple[Any, float]:
    _sync(device)
    start = time.perf_counter()
    value = fn()
    _sync(device)
    return value, time.perf_counter() - start


def _param_millions(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def _gold_answer(pair_row: dict[str, Any]) -> str:
    """The JSON the paper's prompt asks for, for this pair's ground-truth parse."""
    return json.dumps(
        {
            "original concept": pair_row["original_concept"],
            "edited concept": pair_row["edited_concept"],
            "action type": pair_row["action"],
        },
        separators=(",", ":"),
    )


def _load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def measure(
    models: Path, *, repeats: int, size: tuple[int, int], device: str, work: Path
) -> dict[str, Any]:
    from sigma_iml.annotation.local_engine import LocalEngine
    from sigma_iml.annotation.records import ItemWriter
    from sigma_iml.annotation.runner import annotate
    from sigma_iml.data.formats.manifest import iter_manifest
    from sigma_iml.data.pair import PairRef, load_pair
    from sigma_iml.data.synth import make_pairs
    from sigma_iml.instruction.cache import InstructionCache
    from sigma_iml.instruction.llm import SYSTEM_PROMPT, LLMParser, user_message
    from sigma_iml.instruction.parser import CachedParser
    from sigma_iml.instruction.rules import RuleParser
    from sigma_iml.methods import build_method

    manifest = make_pairs(work / "pairs", n=1, seed=0, noise=0.5, kinds=("replace",), size=size)
    row = json.loads(manifest.read_text().splitlines()[0])
    ref = next(iter(iter_manifest(manifest)))
    pair = load_pair(ref)

    method = build_method(f"sigma:checkpoint={models / 'sigma'},device={device},batch_size=1")
    branch = method.branch
    llm = branch.parser.parser
    if not isinstance(llm, LLMParser):
        raise SystemExit(f"{models}/sigma/instruction.json does not name an LLM parser")
    model, tokenizer = llm._load()
    conversation = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(pair.instruction)},
    ]
    prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    answer = _gold_answer(row)
    answer_tokens = len(tokenizer(answer, add_special_tokens=False)["input_ids"]) + 1  # + end
    # A trained parser's single answer (module docstring).
    llm.max_new_tokens, llm.retries = answer_tokens, 0

    load_average = {"start": _load_average()}
    _, first_call = _timed(lambda: method.predict_batch([pair]), device)
    grounding = branch.grounder.models
    samples: dict[str, list[float]] = {name: [] for name in STAGES}
    samples["predict (whole method)"] = []
    prediction = None
    for _ in range(repeats):
        prediction, seconds = _timed(lambda: method.predict_batch([pair])[0], device)
        timings = prediction.extras["timings"]
        if "parser_llm" not in timings:
            raise SystemExit(f"the pair was not parsed by the LLM: {timings}")
        samples["predict (whole method)"].append(seconds)
        samples["parser_llm"].append(timings["parser_llm"])
        samples["grounding"].append(timings["ground"])
        samples["fuse"].append(timings["fuse"])
        samples["backbone"].append(timings["backbone"])
        samples["head"].append(timings["head"])
        samples["network_resize"].append(timings["network"] - timings["backbone"] - timings["head"])

    # Cheap stages: more samples for a stable median.
    cheap_repeats = max(repeats, 20)
    for _ in range(cheap_repeats):
        samples["decode"].append(_timed(lambda: load_pair(ref), device)[1])
    rules = CachedParser(RuleParser(), None)
    for _ in range(cheap_repeats):
        samples["parser_rules"].append(
            _timed(lambda: rules.parse_detailed([ref.instruction]), "cpu")[1]
        )
    # The branch's own parser with a cache holding this instruction: the cache-hit path.
    cache = InstructionCache(work / "parse-cache.sqlite")
    cached_parser = CachedParser(llm, cache)
    cache.put_many(
        cached_parser.name,
        [(ref.instruction, prediction.extras["instruction_result"].edit, "llm", None)],
    )
    for _ in range(cheap_repeats):
        result, seconds = _timed(lambda: cached_parser.parse_detailed([ref.instruction]), "cpu")
        if not result[0].cached:
            raise SystemExit("the parse cache did not answer")
        samples["parser_cache_hit"].append(seconds)
    writer = ItemWriter(work / "write-run", method.spec())
    for index in range(cheap_repeats):
        samples["write"].append(
            _timed(lambda i=index: writer.write(ref, pair, prediction, i, 0, {}), "cpu")[1]
        )
    cache.close()

    # The whole pipeline over copies of the pair under new ids.
    refs = [
        PairRef(
            id=f"{ref.id}-{i}",
            original=ref.original,
            edited=ref.edited,
            instruction=ref.instruction,
            mask=ref.mask,
            source=ref.source,
        )
        for i in range(repeats)
    ]
    load_average["before_pipeline"] = _load_average()
    # What a run costs besides its pairs (lock, run.json, export, summary): with few
    # pairs of the tiny models it is a visible share of the per-pair time.
    _, fixed_seconds = _timed(
        lambda: annotate(
            [],
            method,
            work / "empty-run",
            engine=LocalEngine(workers=2),
            batch_size=1,
            progress=False,
        ),
        device,
    )
    _sync(device)
    start = time.perf_counter()
    summary = annotate(
        refs,
        method,
        work / "pipeline-run",
        engine=LocalEngine(workers=2),
        batch_size=1,
        progress=False,
    )
    _sync(device)
    pipeline_seconds = time.perf_counter() - start
    load_average["end"] = _load_average()
    if summary.done != repeats:
        raise SystemExit(
            f"the pipeline annotated {summary.done} of {repeats} pairs: {summary.failures}"
        )

    medians = {name: statistics.median(values) for name, values in samples.items()}
    stage_sum = sum(medians[name] for name in PIPELINE_STAGES)
    per_pair = pipeline_seconds / repeats
    return {
        # Issue 14's targets: grounding <= 3x the backbone, pipeline <= 1.1x the stages.
        "grounding_over_backbone": medians["grounding"] / medians["backbone"],
        "pipeline_over_sum_of_stages": per_pair / stage_sum,
        "precision": {"branch": branch.precisions},
        "pair": {
            "id": ref.id,
            "instruction": ref.instruction,
            "size": list(pair.size),
            "gold_answer": answer,
        },
        "models": {
            "dinov2_params_m": _param_millions(method.annotator.net.backbone),
            "sigma_head_params_m": _param_millions(method.annotator.net.sigma_head),
            "sigma_input": list(method.annotator.config.backbone.image_size),
            "qwen2_params_m": _param_millions(model),
            "grounding_dino_params_m": _param_millions(grounding.detector),
            "sam2_params_m": _param_millions(grounding.segmenter),
            "sam2_input": grounding.sam_input_size,
        },
        "llm": {
            "prompt_tokens": prompt_tokens,
            "prompt_characters": len(prompt),
            "new_tokens": answer_tokens,
            "attempts": 1,
        },
        "first_call_seconds": first_call,
        "repeats": repeats,
        "samples": samples,
        "stages": medians,
        "pipeline_stages": list(PIPELINE_STAGES),
        "stage_sum_seconds": stage_sum,
        "pipeline_seconds": pipeline_seconds,
        "pipeline_seconds_per_pair": per_pair,
        "overhead": per_pair / stage_sum - 1.0,
        "pipeline_fixed_seconds": fixed_seconds,
        "load_average": load_average,
    }


def markdown(result: dict[str, Any]) -> str:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:,.1f}" if seconds >= 0.01 else f"{seconds * 1000:.3f}"

    stages = result["stages"]
    lines = ["| stage | ms / pair |", "|---|---|"]
    for name in STAGES:
        mark = "" if name in result["pipeline_stages"] else " (not in the sum)"
        lines.append(f"| {STAGE_LABELS[name]}{mark} | {ms(stages[name])} |")
    lines += [
        f"| **sum of the pipeline's stages** | **{ms(result['stage_sum_seconds'])}** |",
        f"| predict (the whole method, for reference) | {ms(stages['predict (whole method)'])} |",
        f"| **whole pipeline (`annotate`), per pair** | "
        f"**{ms(result['pipeline_seconds_per_pair'])}** |",
        f"| overhead | {100 * result['overhead']:+.1f}% |",
        f"| grounding / backbone | {result['grounding_over_backbone']:.2f} |",
        f"| pipeline / sum of stages | {result['pipeline_over_sum_of_stages']:.3f} |",
        f"| `annotate` over no pairs (run folder, export, summary) | "
        f"{ms(result['pipeline_fixed_seconds'])} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--repeats", type=int, default=2, help="slow stages: runs per median")
    parser.add_argument("--keep", type=Path, help="model folder to write once and reuse")
    parser.add_argument("--size", default="512x384", help="WIDTHxHEIGHT of the pair")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny models (smoke test)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    width, height = (int(v) for v in args.size.lower().split("x"))

    models = args.keep or Path(tempfile.mkdtemp(prefix="sigma-pipeline-models-"))
    work = Path(tempfile.mkdtemp(prefix="sigma-pipeline-work-"))
    try:
        built = prepare_models(models, args.tiny)
        print(
            f"models in {models}: {'reused' if built['reused'] else 'built'} "
            f"({built['build_seconds']:.0f} s, {built['disk_bytes'] / 2**30:.2f} GiB)",
            flush=True,
        )
        result = measure(
            models, repeats=args.repeats, size=(width, height), device=args.device, work=work
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.keep is None:
            shutil.rmtree(models, ignore_errors=True)
    import torch

    result.update(
        {
            "tiny": args.tiny,
            "device": args.device,
            "models_build": built,
            "machine": {
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "python": sys.version.split()[0],
            },
        }
    )
    print(markdown(result))
    print(
        f"LLM prompt {result['llm']['prompt_tokens']} tokens ({result['llm']['prompt_characters']} "
        f"characters), {result['llm']['new_tokens']} new tokens; load average "
        f"{result['load_average']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
