"""Where training batches come from: decoded images (features computed by the frozen
backbone each step) or a feature cache (features read from disk), with instruction
priors when the config asks for them.

A source yields the batches of one epoch in the deterministic order of
:func:`~.datasets.epoch_batches` from any batch on, so a resumed run sees the batches an
uninterrupted one would; a batch whose every pair failed to load is ``None`` (logged by
the dataset), and still counts as a batch of the epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..device import autocast
from ..models.sigma import SigmaNet
from .config import TrainConfig
from .datasets import PairTrainingSet, collate_pairs, epoch_batches
from .features import FeatureCache, build_feature_cache

log = logging.getLogger(__name__)


class _Batches:
    """What both sources share: the order of an epoch's batches and moving a batch's
    mask and prior to the device."""

    def __init__(self, *, batch_size: int, seed: int, device: torch.device):
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    def __len__(self) -> int:
        raise NotImplementedError

    def batch_indices(self, epoch: int, shuffle: bool) -> list[np.ndarray]:
        """The index batches of ``epoch``: drawn from ``(seed, epoch)`` when ``shuffle``,
        else in plain order (validation)."""
        if shuffle:
            return epoch_batches(len(self), self.batch_size, self.seed, epoch)
        order = np.arange(len(self))
        return [order[i : i + self.batch_size] for i in range(0, len(self), self.batch_size)]

    def with_labels(self, batch: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
        """``out`` with the batch's mask and prior (those it has) moved to the device."""
        for key in ("mask", "prior"):
            if key in batch:
                out[key] = batch[key].to(self.device)
        return out


class ImageSource(_Batches):
    """Batches decoded from images; features are computed by the frozen backbone."""

    def __init__(
        self,
        dataset: PairTrainingSet,
        net: SigmaNet,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        amp: torch.dtype | None,
        num_workers: int = 0,
    ):
        super().__init__(batch_size=batch_size, seed=seed, device=device)
        self.dataset = dataset
        self.net = net
        self.amp = amp
        self.num_workers = num_workers

    def __len__(self) -> int:
        return len(self.dataset)

    def epoch(self, epoch: int, skip: int = 0, *, shuffle: bool = True) -> Iterator[dict | None]:
        self.dataset.set_epoch(epoch)
        batches = [b.tolist() for b in self.batch_indices(epoch, shuffle)]
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches[skip:],
            collate_fn=collate_pairs,
            num_workers=self.num_workers,
        )
        yield from loader

    def features(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """``{slot: [levels]}`` for every image slot of the batch, and its mask, from
        one backbone forward over all slots."""
        slots = [s for s in ("original", "edited", "partner") if s in batch]
        images = torch.cat([batch[s] for s in slots]).to(self.device, non_blocking=True)
        with autocast(self.device, self.amp):
            maps = self.net.backbone(images)
        size = batch["original"].shape[0]
        out: dict[str, Any] = {
            slot: [level[i * size : (i + 1) * size] for level in maps]
            for i, slot in enumerate(slots)
        }
        return self.with_labels(batch, out)


class CachedSource(_Batches):
    """Batches read from a :class:`FeatureCache`; flips are done in feature space (no
    crop: see :mod:`.features`)."""

    def __init__(
        self,
        cache: FeatureCache,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        hflip_probability: float = 0.0,
        priors=None,
    ):
        super().__init__(batch_size=batch_size, seed=seed, device=device)
        self.cache = cache
        self.priors = priors
        self.hflip_probability = hflip_probability

    def __len__(self) -> int:
        return len(self.cache)

    def epoch(self, epoch: int, skip: int = 0, *, shuffle: bool = True) -> Iterator[dict]:
        for indices in self.batch_indices(epoch, shuffle)[skip:]:
            flips = None
            if shuffle and self.hflip_probability > 0:
                flips = np.array(
                    [
                        np.random.default_rng([self.seed, epoch, int(i), 1]).random()
                        < self.hflip_probability
                        for i in indices
                    ]
                )
            batch = {"indices": torch.as_tensor(indices), **self.cache.batch(indices, flips=flips)}
            if self.priors is not None:
                prior = torch.from_numpy(self.priors.batch(indices))
                if flips is not None and flips.any():
                    rows = torch.from_numpy(flips)
                    prior[rows] = prior[rows].flip(-1)
                batch["prior"] = prior
            yield batch

    def features(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = {slot: [level.to(self.device) for level in batch[slot]] for slot in self.cache.slots}
        return self.with_labels(batch, out)


#: Either kind of source.
Source = ImageSource | CachedSource


def make_source(
    refs,
    net: SigmaNet,
    config: TrainConfig,
    *,
    device: torch.device,
    amp: torch.dtype | None,
    train: bool,
    cache_dir: Path | None,
    partners=None,
    priors=None,
    with_masks: bool = True,
) -> Source:
    """An :class:`ImageSource` (augmenting when ``train``), or a :class:`CachedSource`
    over a feature cache built (once) in ``cache_dir``; ``priors`` (a
    :class:`~.priors.PriorStore` over the same refs) adds instruction priors."""
    image_size = net.config.backbone.image_size
    if cache_dir is None:
        dataset = PairTrainingSet(
            refs,
            image_size,
            augment=config.augment if train else None,
            seed=config.seed,
            with_masks=with_masks,
            partners=partners,
            priors=priors,
        )
        return ImageSource(
            dataset,
            net,
            batch_size=config.batch_size,
            seed=config.seed,
            device=device,
            amp=amp,
            num_workers=config.num_workers,
        )
    plain = PairTrainingSet(
        refs, image_size, augment=None, seed=config.seed, with_masks=with_masks, partners=partners
    )
    cache = build_feature_cache(
        cache_dir,
        net.backbone,
        plain,
        dtype=config.cache_dtype,
        batch_size=config.micro_batch_size or config.batch_size,
        device=device,
        autocast_dtype=amp,
        num_workers=config.num_workers,
    )
    return CachedSource(
        cache,
        batch_size=config.batch_size,
        seed=config.seed,
        device=device,
        hflip_probability=config.augment.hflip_probability if train else 0.0,
        priors=priors,
    )


def make_priors(
    config: TrainConfig,
    refs,
    net: SigmaNet,
    directory: Path,
    settings: dict[str, Any] | None,
    branch=None,
):
    """The priors of ``refs`` as ``config.priors`` asks (built once in ``directory``), or
    None for ``priors: none`` and for a head without the instruction input (nothing
    would read them). ``settings``: the instruction settings (None: the defaults)."""
    if config.priors == "none":
        return None
    if not net.config.head.use_instruction:
        log.info("priors: %s skipped: the head has no instruction input", config.priors)
        return None
    from .priors import build_priors

    return build_priors(
        directory,
        refs,
        dict(settings or {}),
        net.config.backbone.image_size,
        source=config.priors,
        branch=branch,
    )


def split_batch(batch: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """Cut a batch into micro-batches of ``size`` (gradient accumulation)."""
    total = batch_size_of(batch)
    if size >= total:
        return [batch]
    chunks = []
    for start in range(0, total, size):
        chunk = {}
        for key, value in batch.items():
            if isinstance(value, list):
                chunk[key] = [v[start : start + size] for v in value]
            else:
                chunk[key] = value[start : start + size]
        chunks.append(chunk)
    return chunks


def batch_size_of(batch: dict[str, Any]) -> int:
    first = batch["original"]
    return len(first[0]) if isinstance(first, list) else len(first)
