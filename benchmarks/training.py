"""Timings behind docs/training.md: training from cached features against recomputing
them, and the SD VAE round trip against TAESD.

    python benchmarks/training.py cache [--size 518] [--batch 2] [--repeats 3]
    python benchmarks/training.py vae [--size 512] [--repeats 3]

``cache`` times optimizer steps of the paper-size network (DINOv2-B/14 structure,
default head) both ways; ``vae`` times one round trip of each autoencoder at 512x512.
Models are built from configs with random weights: timings do not depend on the
weights, and nothing is downloaded. The JSON result is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

#: SD 1.5's VAE (``stable-diffusion-v1-5/stable-diffusion-v1-5``, subfolder ``vae``).
SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
)


def _median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_cache_speedup(
    size: int = 518,
    batch: int = 2,
    repeats: int = 3,
    dinov2_overrides: dict | None = None,
    head_overrides: dict | None = None,
) -> dict:
    """Median seconds per optimizer step (batch ``batch`` pairs) recomputing backbone
    features vs reading them from a float16 memmap cache, and the ratio."""
    from transformers import Dinov2Config, Dinov2Model

    from sigma_iml.models.backbone import DinoBackbone
    from sigma_iml.models.config import BackboneConfig, HeadConfig, SigmaConfig
    from sigma_iml.models.sigma import SigmaNet
    from sigma_iml.training.losses import segmentation_loss

    dinov2_config = Dinov2Config(image_size=size, **(dinov2_overrides or {}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Dinov2Model(dinov2_config)
    backbone_config = BackboneConfig(name_or_path="benchmark", image_size=(size, size))
    backbone = DinoBackbone(model, backbone_config)
    net = SigmaNet(
        SigmaConfig(backbone=backbone_config, head=HeadConfig(**(head_overrides or {}))), backbone
    )
    head = net.sigma_head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-5)
    images = torch.rand(batch, 3, size, size)
    mask = (torch.rand(batch, 1, size, size) > 0.7).float()

    def step(features_o, features_e) -> None:
        optimizer.zero_grad()
        out = head(features_o, features_e, None, (size, size))
        segmentation_loss(out.logits, mask)[0].backward()
        optimizer.step()

    def recompute() -> None:
        step(*net.features(images, images.flip(-1)))

    with tempfile.TemporaryDirectory() as folder:
        features_o, features_e = net.features(images, images.flip(-1))
        stored = []
        for k, (fo, fe) in enumerate(zip(features_o, features_e, strict=True)):
            array = np.lib.format.open_memmap(
                Path(folder) / f"level{k}.npy", mode="w+", dtype=np.float16,
                shape=(batch, 2, *fo.shape[1:]),
            )  # fmt: skip
            array[:, 0] = fo.numpy()
            array[:, 1] = fe.numpy()
            array.flush()
            stored.append(np.load(Path(folder) / f"level{k}.npy", mmap_mode="r"))

        def cached() -> None:
            levels = [torch.from_numpy(np.array(a)).float() for a in stored]
            step([lv[:, 0] for lv in levels], [lv[:, 1] for lv in levels])

        cached()  # warm-up
        recompute()
        seconds_cached = _median_seconds(cached, repeats)
        seconds_recompute = _median_seconds(recompute, repeats)
    return {
        "size": size,
        "batch_pairs": batch,
        "threads": torch.get_num_threads(),
        "seconds_per_step_recompute": round(seconds_recompute, 3),
        "seconds_per_step_cached": round(seconds_cached, 3),
        "speedup": round(seconds_recompute / seconds_cached, 2),
    }


def time_round_trips(size: int = 512, repeats: int = 1) -> dict:
    """Median seconds of one round trip of a ``size`` x ``size`` image through SD 1.5's
    VAE and through TAESD (diffusers ``AutoencoderTiny`` defaults = TAESD's config)."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    from sigma_iml.training.config import PartnerConfig
    from sigma_iml.training.partners import RoundTrip

    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    result = {"size": size, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as folder:
        for kind, cls, config in (
            ("taesd", AutoencoderTiny, {}),
            ("vae", AutoencoderKL, SD15_VAE),
        ):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                cls(**config).save_pretrained(Path(folder) / kind)
            round_trip = RoundTrip(
                PartnerConfig(kind=kind, name_or_path=str(Path(folder) / kind), subfolder=""),
                local_files_only=True,
            )
            round_trip([image])  # warm-up
            result[f"{kind}_seconds"] = round(
                _median_seconds(lambda rt=round_trip: rt([image]), repeats), 2
            )
    result["vae_over_taesd"] = round(result["vae_seconds"] / result["taesd_seconds"], 1)
    return result


def main() -> None:  # pragma: no cover - a measurement tool
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cache", "vae"])
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.what == "cache":
        print(json.dumps(time_cache_speedup(args.size or 518, args.batch, args.repeats), indent=1))
    else:
        print(json.dumps(time_round_trips(args.size or 512, args.repeats), indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
