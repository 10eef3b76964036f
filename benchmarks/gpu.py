"""SIGMA on one GPU: per-stage throughput at batch 1/8/32, peak memory, bf16/fp32 mask
agreement and the backbone's fraction of the GPU's bf16 matmul peak, in one command.

    python benchmarks/gpu.py --json OUT.json [--device cuda] [--batches 1,8,32]
        [--repeats 3] [--image-size 518] [--tiny]

Models are built from their configurations with random weights (no download): DINOv2-B
and the paper's head (``drb_cross_level_pool=1``) as in ``backbone.py``; GroundingDINO-B
and SAM 2.1-S as in ``pipeline.py`` (``--tiny``: the test models of
``sigma_iml.testing``). At each batch size B (pairs): backbone (2B images in one
call), head, and grounding (``Grounder.ground`` of a ``replace`` concept on both images
of B pairs) run under the precision ``--precision`` picks (``auto``: bf16 on CUDA), each
the best of ``--repeats`` after a warm-up; throughput is pairs per second. Sized to
finish in a few minutes on an H100-class GPU; tested on CPU with ``--device cpu --tiny``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_seconds(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up (kernels chosen, caches filled)
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def grounding_models(work: Path, tiny: bool) -> tuple[str, str]:
    if tiny:
        from sigma_iml.testing import write_tiny_instruction_models

        paths = write_tiny_instruction_models(work)
        return str(paths["grounding-dino"]), str(paths["sam2"])
    pipeline = _load("pipeline")
    pipeline.write_grounding_dino(work / "grounding-dino", 0)
    pipeline.write_sam2_small(work / "sam2", 0)
    return str(work / "grounding-dino"), str(work / "sam2")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--grounding-size", default="512x384", help="WIDTHxHEIGHT of a pair")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)

    from sigma_iml.device import autocast, autocast_dtype, precision_name, resolve_device
    from sigma_iml.instruction.grounding import Grounder
    from sigma_iml.models.backbone import backbone_in_dtype

    backbone_bench = _load("backbone")
    device = resolve_device(args.device)
    dtype = autocast_dtype(device, args.precision)
    batches = [int(b) for b in args.batches.split(",")]
    size = (args.image_size, args.image_size)
    net, config = backbone_bench.build_net(args.image_size, args.tiny, device)
    # The frozen backbone in the run's dtype, as the Annotator holds it.
    run_backbone = backbone_in_dtype(net.backbone, dtype)
    peak = backbone_bench.matmul_peak_gflops(device, torch.bfloat16, 4096 if not args.tiny else 256)
    width, height = (int(v) for v in args.grounding_size.lower().split("x"))

    def run(fn, run_dtype=dtype):
        def call():
            with torch.inference_mode(), autocast(device, run_dtype):
                return fn()

        return call

    results: dict = {"stages": {}}
    with tempfile.TemporaryDirectory(prefix="sigma-gpu-") as work:
        detector, segmenter = grounding_models(Path(work), args.tiny)
        grounder = Grounder(
            detector,
            segmenter,
            device=str(device),
            precision=args.precision,
            batch_size=64,
            local_files_only=True,
        )
        rng = np.random.default_rng(0)

        def measure(batch: int) -> dict:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            original = torch.rand(batch, 3, *size, device=device)
            edited = torch.rand(batch, 3, *size, device=device)
            with torch.inference_mode(), autocast(device, dtype):
                features_o, features_e = net.features(original, edited, run_backbone)
            backbone_fn = run(lambda: net.features(original, edited, run_backbone))
            backbone_gflop = backbone_bench.count_gflop(backbone_fn)
            backbone_s = best_seconds(backbone_fn, device, args.repeats)
            head_s = best_seconds(
                run(lambda: net.head(features_o, features_e, None, size)), device, args.repeats
            )
            images = [
                rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2 * batch)
            ]
            concepts = ["cat"] * batch + ["dog"] * batch
            ground_s = best_seconds(lambda: grounder.ground(images, concepts), device, 1)
            return {
                "backbone_pairs_per_second": batch / backbone_s,
                "head_pairs_per_second": batch / head_s,
                "grounding_pairs_per_second": batch / ground_s,
                "backbone_fraction_of_bf16_peak": backbone_gflop / backbone_s / peak,
                "peak_memory_mib": peak_memory_mib(device),
            }

        for batch in batches:
            results["stages"][str(batch)] = measure(batch)
        one = torch.rand(2, 3, *size, device=device)
        bf16 = run(lambda: net(one[:1], one[1:]), torch.bfloat16)().logits.float()
        fp32 = run(lambda: net(one[:1], one[1:]), None)().logits.float()
        results.update(
            {
                "device": str(device),
                "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                "cpu": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "tiny": args.tiny,
                "precision": precision_name(dtype),
                "grounding_precision": grounder.precision,
                "bf16_peak_gflops": peak,
                "drb_cross_level_pool": config.head.drb_cross_level_pool,
                "mask_agreement_bf16_fp32": ((bf16 > 0) == (fp32 > 0)).float().mean().item(),
                "batches": batches,
            }
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
