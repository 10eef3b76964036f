"""Time the SIGMA backbone and head on this machine, against its float32 matmul peak.

    python benchmarks/backbone.py --json OUT.json [--repeats 5] [--image-size 518]

Builds the real DINOv2-Base configuration (``Dinov2Config()`` defaults, random weights,
SDPA attention) and the default SIGMA head, runs one pair (a batch of 2 through the
backbone, 1 through the head) and writes:

- ``peak_gflops``: best float32 GFLOP/s of a 2048^3 matmul, sampled between the timed
  runs of the same process;
- ``backbone_gflop`` / ``head_gflop``: FLOPs counted with ``FlopCounterMode`` (CPU SDPA
  counted by the formula of the CUDA kernels, which the counter lacks on CPU);
- ``backbone_gflops`` (achieved), ``backbone_fraction_of_peak``;
- ``head_fraction_of_backbone``: head + decoder time / backbone time;
- ``pair_seconds``: the full forward of one pair.

Times are the best of ``--repeats`` interleaved rounds after a warm-up round (medians
are written too): on a shared machine the best run is the one least disturbed by other
work, and interleaving exposes backbone and head to the same load.
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


def matmul_peak_gflops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)

    def run() -> None:
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return 2 * size**3 / min(time_runs(run, repeats, warmup=2)) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from transformers import Dinov2Config, Dinov2Model

    from sigma_iml.models.backbone import DinoBackbone
    from sigma_iml.models.config import BackboneConfig, SigmaConfig
    from sigma_iml.models.sigma import SigmaNet

    device = torch.device(args.device)
    size = (args.image_size, args.image_size)
    config = SigmaConfig(
        backbone=BackboneConfig(name_or_path="dinov2-base (random)", image_size=size)
    )
    # Dinov2Config() defaults are ViT-B/14, i.e. DINOv2-Base.
    dinov2 = Dinov2Model(Dinov2Config(attn_implementation="sdpa"))
    assert dinov2.config._attn_implementation == "sdpa"
    net = SigmaNet(config, DinoBackbone(dinov2, config.backbone)).to(device).eval()

    generator = torch.Generator().manual_seed(0)
    original = torch.rand(1, 3, *size, generator=generator).to(device)
    edited = torch.rand(1, 3, *size, generator=generator).to(device)

    def synced(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                out = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        return run

    with torch.inference_mode():
        features_o, features_e = net.features(original, edited)

    backbone = synced(lambda: net.features(original, edited))
    head = synced(lambda: net.head(features_o, features_e, None, size))
    pair = synced(lambda: net(original, edited))

    backbone_gflop = count_gflop(backbone)
    head_gflop = count_gflop(head)
    # The peak is sampled between every timed run and the best sample kept: one sample
    # taken while other processes hold the cores would understate it.
    peaks = [matmul_peak_gflops(device)]
    times = time_interleaved(
        {"backbone": backbone, "head": head, "pair": pair},
        args.repeats,
        between=lambda: peaks.append(matmul_peak_gflops(device, repeats=3)),
    )
    peak = max(peaks)
    backbone_times, head_times, pair_times = times["backbone"], times["head"], times["pair"]

    backbone_best, head_best = min(backbone_times), min(head_times)
    results = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "image_size": args.image_size,
        "repeats": args.repeats,
        "peak_gflops": round(peak, 1),
        "backbone_gflop": round(backbone_gflop, 1),
        "head_gflop": round(head_gflop, 1),
        "backbone_seconds": round(backbone_best, 3),
        "backbone_seconds_median": round(statistics.median(backbone_times), 3),
        "backbone_gflops": round(backbone_gflop / backbone_best, 1),
        "backbone_fraction_of_peak": round(backbone_gflop / backbone_best / peak, 3),
        "head_seconds": round(head_best, 3),
        "head_seconds_median": round(statistics.median(head_times), 3),
        "head_gflops": round(head_gflop / head_best, 1),
        "head_fraction_of_backbone": round(head_best / backbone_best, 3),
        "pair_seconds": round(min(pair_times), 3),
        "pair_seconds_median": round(statistics.median(pair_times), 3),
        "backbone_blocks_run": net.backbone.num_blocks_run,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
