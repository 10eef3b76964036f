"""Noise-calibration partners for Stage II: ``Ĩ = Dec(Enc(I_e))``, a VAE round trip of
the edited image (paper §3.3: SD 1.5 or SDXL VAE), semantically identical to ``I_e``
and so with an all-zero target.

A round trip costs tens of seconds per 512x512 image with the SD VAE on a CPU of a few
cores (~36 s measured on two, docs/training.md; a fraction of a second on a GPU), so
each partner is computed once, at the model's input size (the
only size training uses it at), and kept as a lossless PNG:
``<folder>/<id-safe-name>.png`` with ``<folder>/meta.json`` naming the round trip it was
made with. A folder made with another round trip or input size is refused, not mixed.

Kinds (``PartnerConfig.kind``): ``vae`` (diffusers ``AutoencoderKL``; paper), ``taesd``
(diffusers ``AutoencoderTiny``, the TAESD architecture: a much cheaper approximation of
the same latent space; ours) and ``resynthesis`` (the generated-pair degradation of
:func:`sigma_iml.data.synth.resynthesis_noise`; no model: for offline tests, where a
randomly initialised tiny VAE would return garbage rather than the same image).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.io import atomic_write_bytes, atomic_write_text, encode_png
from ..data.pair import PairRef, load_pair, resize_rgb
from ..errors import ConfigError
from .config import PartnerConfig

log = logging.getLogger(__name__)

META_FILE = "meta.json"


def safe_name(item_id: str) -> str:
    """A file name for ``item_id``: readable characters kept, plus a short hash so two
    ids that differ only in replaced characters never collide."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id)[:80]
    digest = hashlib.sha1(item_id.encode("utf-8")).hexdigest()[:8]
    return f"{readable}-{digest}"


class RoundTrip:
    """A diffusers autoencoder round trip of uint8 RGB images (all of one size)."""

    def __init__(
        self,
        config: PartnerConfig,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        local_files_only: bool = False,
    ):
        from diffusers import AutoencoderKL, AutoencoderTiny

        if config.kind not in ("vae", "taesd"):
            raise ConfigError(f"RoundTrip runs an autoencoder, not {config.kind!r}")
        from ..hub import load_variant, resolve_pretrained

        kind = AutoencoderKL if config.kind == "vae" else AutoencoderTiny
        source, local_files_only = resolve_pretrained(config.name_or_path, local_files_only)
        # Plain or fp16-variant-only weights (hub.weight_variants); cast to ``dtype``.
        model = load_variant(
            lambda variant: kind.from_pretrained(
                source,
                subfolder=config.subfolder or None,
                variant=variant,
                local_files_only=local_files_only,
                use_safetensors=True,
                torch_dtype=dtype,
            ),
            source,
            f"the {config.kind} autoencoder {config.name_or_path!r} "
            f"(subfolder {config.subfolder!r})",
            config.subfolder or None,
        )
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(self.device).eval().requires_grad_(False)
        # Both autoencoders downsample by 2 per block after the first (8 for SD's VAE and
        # TAESD); inputs are padded to a multiple of that.
        blocks = getattr(model.config, "encoder_block_out_channels", None)
        if blocks is None:
            blocks = model.config.block_out_channels
        self.multiple = 2 ** max(len(blocks) - 1, 0)

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray], seed: int = 0) -> list[np.ndarray]:
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        height, width = batch.shape[-2:]
        pad_h = (-height) % self.multiple
        pad_w = (-width) % self.multiple
        if pad_h or pad_w:
            # Reflection keeps the border statistics close to the image's own.
            batch = F.pad(batch, (0, pad_w, 0, pad_h), mode="reflect")
        batch = batch.to(self.device, self.dtype)
        if self.config.kind == "vae":
            distribution = self.model.encode(batch).latent_dist
            if self.config.sample_latent:
                generator = torch.Generator(device=self.device).manual_seed(seed)
                latents = distribution.sample(generator=generator)
            else:
                latents = distribution.mode()
        else:
            latents = self.model.encode(batch).latents
        decoded = self.model.decode(latents).sample[..., :height, :width].float()
        out = ((decoded.clamp(-1.0, 1.0) + 1.0) * 127.5).round().byte()
        return [np.ascontiguousarray(x) for x in out.permute(0, 2, 3, 1).cpu().numpy()]


class PartnerStore:
    """Partners on disk for the edited images of a dataset, computed on first need."""

    def __init__(
        self,
        directory: str | os.PathLike,
        config: PartnerConfig,
        image_size: tuple[int, int],
        *,
        device: torch.device | str = "cpu",
        local_files_only: bool = False,
    ):
        self.directory = Path(directory)
        self.config = config
        self.image_size = tuple(image_size)
        self.device = device
        self.local_files_only = local_files_only
        self._round_trip: RoundTrip | None = None
        signature = {
            "kind": config.kind,
            "name_or_path": config.name_or_path if config.kind != "resynthesis" else None,
            "subfolder": config.subfolder if config.kind != "resynthesis" else None,
            "sample_latent": config.sample_latent,
            "resynthesis_level": config.resynthesis_level if config.kind == "resynthesis" else None,
            "image_size": list(self.image_size),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = self.directory / META_FILE
        if meta.exists():
            stored = json.loads(meta.read_text(encoding="utf-8"))
            if stored != signature:
                raise ConfigError(
                    f"partner folder {self.directory} holds round trips of {stored}, not "
                    f"{signature}; give another folder"
                )
        else:
            atomic_write_text(meta, json.dumps(signature, indent=1) + "\n")

    def path(self, item_id: str) -> Path:
        return self.directory / f"{safe_name(item_id)}.png"

    def _compute(self, ids: Sequence[str], edited: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.config.kind == "resynthesis":
            from ..data.synth import resynthesis_noise

            results = []
            for item_id, image in zip(ids, edited, strict=True):
                seed = int.from_bytes(hashlib.sha1(item_id.encode()).digest()[:8], "little")
                noisy, _ = resynthesis_noise(
                    image, self.config.resynthesis_level, np.random.default_rng(seed)
                )
                results.append(noisy)
            return results
        if self._round_trip is None:
            self._round_trip = RoundTrip(
                self.config, device=self.device, local_files_only=self.local_files_only
            )
        return self._round_trip(list(edited))

    def _store(self, item_id: str, partner: np.ndarray) -> None:
        atomic_write_bytes(self.path(item_id), encode_png(partner, compress_level=3))

    def get(self, item_id: str, edited_resized: np.ndarray) -> np.ndarray:
        """The partner of ``item_id``'s edited image (given at the input size),
        computed and stored when missing."""
        path = self.path(item_id)
        if path.exists():
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB")).copy()
        partner = self._compute([item_id], [edited_resized])[0]
        self._store(item_id, partner)
        return partner

    def build(self, refs: Sequence[PairRef]) -> int:
        """Compute every missing partner of ``refs`` in batches; returns how many were
        computed. Interrupted, it resumes: finished partners are files already."""
        height, width = self.image_size
        missing = [ref for ref in refs if not self.path(ref.id).exists()]
        for start in range(0, len(missing), self.config.batch_size):
            chunk = missing[start : start + self.config.batch_size]
            edited = [
                resize_rgb(load_pair(ref, with_mask=False).edited, (width, height)) for ref in chunk
            ]
            for ref, partner in zip(
                chunk, self._compute([r.id for r in chunk], edited), strict=True
            ):
                self._store(ref.id, partner)
            log.info("partners: %d of %d computed", start + len(chunk), len(missing))
        return len(missing)
