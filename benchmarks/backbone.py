"""Time the SIGMA backbone and the paper's head on this machine, against the matmul peak
of the precision it runs.

    python benchmarks/backbone.py --json OUT.json [--repeats 5] [--image-size 518]
        [--precision auto|bf16|fp32] [--device cpu] [--compile] [--tiny]

Builds the real DINOv2-Base configuration (``Dinov2Config()`` defaults, random weights,
SDPA attention) and the SIGMA head at the paper's configuration (``HeadConfig()`` with
``drb_cross_level_pool=1``: every key of the cross-level attention), runs one pair (a
batch of 2 through the backbone, 1 through the head) at the precision
``sigma_iml.device`` picks for ``--precision`` (``auto``: bf16 autocast on CUDA and on
CPUs with AMX, float32 elsewhere) and writes:

- ``dtype``/``precision``: what ran; ``peak_gflops``: best GFLOP/s of a 2048^3 matmul in
  that dtype, sampled between the timed runs of the same process;
- ``backbone_gflop`` / ``head_gflop``: FLOPs counted with ``FlopCounterMode`` (CPU SDPA
  counted by the formula of the CUDA kernels, which the counter lacks on CPU);
- ``backbone_gflops`` (achieved), ``backbone_fraction_of_peak``;
- ``head_fraction_of_backbone``: head + decoder time / backbone time;
- ``pair_seconds``: the full forward of one pair; ``fp32_pair_seconds``: the same in
  float32 (equal runs when ``auto`` picks float32); ``bf16_over_fp32``;
- ``variants``: the pair's time with both images in one backbone call (the default) and
  in two, in channels-last memory format, and with ``torch.compile`` (``--compile``),
  each the best of the same interleaved rounds;
- ``mask_agreement_bf16_fp32``: share of pixels where the bf16 and float32 masks
  (logit > 0) agree, for this pair (random weights: a check of numerics, not quality).

Times are the best of ``--repeats`` interleaved rounds after a warm-up round (medians
are written too): on a shared machine the best run is the one least disturbed by other
work, and interleaving exposes every variant to the same load.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


def _sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """QK^T and AV products of scaled dot-product attention: 2·b·h·s_q·s_k·(d_k + d_v)."""
    batch, heads, q_len, head_dim = query_shape
    k_len = key_shape[-2]
    return 2 * batch * heads * q_len * k_len * (head_dim + value_shape[-1])


def count_gflop(fn: Callable[[], object]) -> float:
    mapping = {}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        mapping[cpu_sdpa] = _sdpa_flop
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def time_runs(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, between: Callable[[], object] | None = None
) -> dict[str, list[float]]:
    """Run the functions in turn, ``repeats`` rounds after a warm-up round, so that on a
    machine shared with other work each of them sees the same mix of load; ``between``
    runs after each function (the peak measurement, so it samples the same moments)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_index in range(repeats + 1):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if round_index:
                times[name].append(time.perf_counter() - start)
            if between is not None:
                between()
    return times


def matmul_peak_gflops(
    device: torch.device, dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 10
) -> float:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)

    def run() -> None:
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return 2 * size**3 / min(time_runs(run, repeats, warmup=2)) / 1e9


def build_net(image_size: int, tiny: bool, device: torch.device):
    """SigmaNet on random DINOv2-Base (or the tiny test backbone) with the paper's head."""
    from transformers import Dinov2Config, Dinov2Model

    from sigma_iml.models.backbone import DinoBackbone
    from sigma_iml.models.config import BackboneConfig, HeadConfig, SigmaConfig
    from sigma_iml.models.sigma import SigmaNet

    size = (image_size, image_size)
    head = HeadConfig(drb_cross_level_pool=1)  # the paper's head: every key
    if tiny:
        from sigma_iml.testing import dinov2_config

        dino_config = dinov2_config(attn_implementation="sdpa")
        head = HeadConfig(
            embed_dim=32, num_heads=4, fpn_dim=16, decoder_dim=8, drb_cross_level_pool=1
        )
    else:
        # Dinov2Config() defaults are ViT-B/14, i.e. DINOv2-Base.
        dino_config = Dinov2Config(attn_implementation="sdpa")
    config = SigmaConfig(
        backbone=BackboneConfig(name_or_path="dinov2-base (random)", image_size=size), head=head
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dinov2 = Dinov2Model(dino_config)
        net = SigmaNet(config, DinoBackbone(dinov2, config.backbone))
    assert dinov2.config._attn_implementation == "sdpa"
    return net.to(device).eval(), config


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--tiny", action="store_true", help="a tiny backbone (smoke test)")
    parser.add_argument("--peak-size", type=int, default=2048, help="side of the peak matmul")
    args = parser.parse_args(argv)

    from sigma_iml.device import autocast, autocast_dtype, precision_name, resolve_device
    from sigma_iml.models.backbone import backbone_in_dtype

    device = resolve_device(args.device)
    dtype = autocast_dtype(device, args.precision)
    size = (args.image_size, args.image_size)
    net, config = build_net(args.image_size, args.tiny, device)

    generator = torch.Generator().manual_seed(0)
    original = torch.rand(1, 3, *size, generator=generator).to(device)
    edited = torch.rand(1, 3, *size, generator=generator).to(device)

    def synced(fn: Callable[[], object], run_dtype=dtype) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode(), autocast(device, run_dtype):
                out = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        return run

    # What the Annotator runs: under bf16 the frozen backbone with bf16 weights.
    run_backbone = backbone_in_dtype(net.backbone, dtype)

    def forward(first, second, backbone=run_backbone):
        features = net.features(first, second, backbone)
        return net.head(*features, None, tuple(first.shape[-2:]))

    with torch.inference_mode(), autocast(device, dtype):
        features_o, features_e = net.features(original, edited, run_backbone)

    def two_calls():
        # Each image through the backbone on its own (what one batched call replaces).
        run_backbone(original), run_backbone(edited)
        return net.head(features_o, features_e, None, size)

    backbone = synced(lambda: net.features(original, edited, run_backbone))
    head = synced(lambda: net.head(features_o, features_e, None, size))
    pair = synced(lambda: forward(original, edited))
    fp32_pair = synced(lambda: forward(original, edited, net.backbone), None)
    original_cl = original.contiguous(memory_format=torch.channels_last)
    edited_cl = edited.contiguous(memory_format=torch.channels_last)
    fns = {
        "backbone": backbone,
        "head": head,
        "pair": pair,
        "pair_two_backbone_calls": synced(two_calls),
        "pair_channels_last": synced(lambda: forward(original_cl, edited_cl)),
    }
    if dtype is not None:
        fns["fp32_pair"] = fp32_pair
        # Autocast over the float32 backbone weights (recast at every call): what
        # backbone_in_dtype saves.
        fns["pair_float32_backbone_weights"] = synced(
            lambda: forward(original, edited, net.backbone)
        )
    compile_seconds = None
    if args.compile:
        compiled = torch.compile(forward)
        start = time.perf_counter()
        synced(lambda: compiled(original, edited))()
        compile_seconds = time.perf_counter() - start
        fns["pair_compiled"] = synced(lambda: compiled(original, edited))

    backbone_gflop = count_gflop(backbone)
    head_gflop = count_gflop(head)
    peak_dtype = dtype or torch.float32
    # The peak is sampled between every timed run and the best sample kept: one sample
    # taken while other processes hold the cores would understate it.
    peaks = [matmul_peak_gflops(device, peak_dtype, args.peak_size)]
    times = time_interleaved(
        fns,
        args.repeats,
        between=lambda: peaks.append(matmul_peak_gflops(device, peak_dtype, args.peak_size, 3)),
    )
    peak = max(peaks)
    best = {name: min(values) for name, values in times.items()}
    fp32_best = best.get("fp32_pair", best["pair"])

    # bf16 against float32 whatever ran (on a CPU without bf16 units bf16 is emulated:
    # one slow forward, for the numerics).
    bf16_backbone = backbone_in_dtype(net.backbone, torch.bfloat16)
    logits = synced(lambda: forward(original, edited, bf16_backbone), torch.bfloat16)()
    logits = logits.logits.float()
    fp32_logits = fp32_pair().logits.float()
    agreement = ((logits > 0) == (fp32_logits > 0)).float().mean().item()

    backbone_best, head_best = best["backbone"], best["head"]
    results = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "tiny": args.tiny,
        "image_size": args.image_size,
        "repeats": args.repeats,
        "precision_asked": args.precision,
        "precision": precision_name(dtype),
        "dtype": str(peak_dtype).removeprefix("torch."),
        "drb_cross_level_pool": config.head.drb_cross_level_pool,
        "peak_gflops": round(peak, 1),
        "backbone_gflop": round(backbone_gflop, 4),
        "head_gflop": round(head_gflop, 4),
        "backbone_seconds": round(backbone_best, 4),
        "backbone_seconds_median": round(statistics.median(times["backbone"]), 4),
        "backbone_gflops": round(backbone_gflop / backbone_best, 3),
        "backbone_fraction_of_peak": round(backbone_gflop / backbone_best / peak, 4),
        "head_seconds": round(head_best, 4),
        "head_seconds_median": round(statistics.median(times["head"]), 4),
        "head_gflops": round(head_gflop / head_best, 3),
        "head_fraction_of_backbone": round(head_best / backbone_best, 3),
        "pair_seconds": round(best["pair"], 4),
        "pair_seconds_median": round(statistics.median(times["pair"]), 4),
        "fp32_pair_seconds": round(fp32_best, 4),
        "bf16_over_fp32": round(best["pair"] / fp32_best, 3) if dtype is not None else None,
        "mask_agreement_bf16_fp32": round(agreement, 5),
        "variants": {
            "pair_one_backbone_call": round(best["pair"], 4),
            "pair_two_backbone_calls": round(best["pair_two_backbone_calls"], 4),
            "pair_channels_last": round(best["pair_channels_last"], 4),
            "pair_float32_backbone_weights": (
                round(best["pair_float32_backbone_weights"], 4) if dtype is not None else None
            ),
            "pair_compiled": round(best["pair_compiled"], 4) if args.compile else None,
            "compile_seconds": round(compile_seconds, 1) if compile_seconds else None,
        },
        "backbone_blocks_run": net.backbone.num_blocks_run,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
