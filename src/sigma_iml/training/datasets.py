"""Training sets over any dataset reader, with deterministic order and augmentation.

Randomness never lives in a stateful generator: the order of epoch ``e`` is a
permutation drawn from ``(seed, e)`` and the augmentation of item ``i`` in epoch ``e``
from ``(seed, e, i)``. So a run resumed at any step sees exactly the batches an
uninterrupted run would have seen, and DataLoader workers need no shared state.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.pair import Pair, PairRef, load_pair, resize_mask, resize_rgb
from ..data.readers import open_dataset
from ..errors import ConfigError, DataError
from .config import AugmentConfig
from .transforms import (
    AugmentDraw,
    apply_augmentation,
    apply_to_map,
    draw_augmentation,
    image_tensor,
    mask_tensor,
)

log = logging.getLogger(__name__)


def list_pairs(
    path: str | os.PathLike, *, require_masks: bool, format: str | None = None, **options: Any
) -> list[PairRef]:
    """Every ref of the dataset at ``path`` (any reader's format; ``format`` and reader
    ``options`` such as ``columns``/``keys`` as :func:`open_dataset` takes them). With
    ``require_masks``, a ref without a ground-truth mask is an error naming it."""
    refs = list(open_dataset(path, format=format, **options))
    if not refs:
        raise ConfigError(f"dataset {path} lists no pairs")
    if require_masks:
        missing = [ref.id for ref in refs if not ref.has_mask and ref.problem is None]
        if missing:
            raise ConfigError(
                f"dataset {path}: {len(missing)} pair(s) have no mask, e.g. {missing[:3]}; "
                "supervised training needs masks"
            )
    return refs


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The index batches of one epoch: a permutation drawn from ``(seed, epoch)``, cut
    into ``batch_size`` pieces (the last may be shorter)."""
    order = np.random.default_rng([seed, epoch, 0x5EED]).permutation(count)
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


def steps_per_epoch(count: int, batch_size: int) -> int:
    return math.ceil(count / batch_size)


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


class PairTrainingSet(Dataset):
    """Decoded, augmented pairs as tensors at the model's input size.

    An item is a dict with ``index`` and ``original`` / ``edited`` ``(3, H, W)`` floats
    in [0, 1]; ``mask`` ``(1, H, W)`` when the pair has one and ``with_masks``; and
    ``partner`` (Stage II's noise partner of the edited image) when a ``partners``
    store is given; ``prior`` ``(1, H, W)`` (the instruction prior, augmented with the
    same draw) when a ``priors`` store (:mod:`.priors`) is given. ``augment=None`` gives the plain resized pair (validation).

    With a partner store the pair is resized to the input size first and augmented
    there (partners are computed at the input size, see :mod:`.partners`); otherwise
    the crop is taken at the pair's own resolution and then resized, as the
    annotator resizes a whole image.
    """

    def __init__(
        self,
        refs: Sequence[PairRef],
        image_size: tuple[int, int],
        *,
        augment: AugmentConfig | None,
        seed: int = 0,
        with_masks: bool = True,
        partners=None,
        priors=None,
    ):
        self.refs = list(refs)
        self.priors = priors
        self.image_size = tuple(image_size)
        self.augment = augment
        self.seed = seed
        self.with_masks = with_masks
        self.partners = partners
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.refs)

    def load(self, index: int) -> Pair:
        return load_pair(self.refs[index], with_mask=self.with_masks)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor] | None:
        try:
            pair = self.load(index)
        except DataError as err:
            # One unreadable pair must not end a long run: it is logged and dropped from
            # its batch (see collate_pairs).
            log.warning("skipping %s", err.with_item(self.refs[index].id))
            return None
        height, width = self.image_size
        images = [pair.original, pair.edited]
        mask = pair.mask if self.with_masks else None
        if self.partners is not None:
            images = [resize_rgb(im, (width, height)) for im in images]
            images.append(self.partners.get(self.refs[index].id, images[1]))
            if mask is not None:
                mask = resize_mask(mask, (width, height))
        shape = images[0].shape[:2]
        if self.augment is None:
            draw = AugmentDraw.identity(*shape)
        else:
            draw = draw_augmentation(shape, self.augment, item_rng(self.seed, self.epoch, index))
        prior = None
        if self.priors is not None:
            from .priors import resize_prior

            prior = apply_to_map(resize_prior(self.priors.get(index), shape), draw, self.image_size)
        images, mask = apply_augmentation(images, mask, draw, self.image_size)
        item: dict[str, torch.Tensor] = {
            "index": torch.tensor(index),
            "original": image_tensor(images[0]),
            "edited": image_tensor(images[1]),
        }
        if self.partners is not None:
            item["partner"] = image_tensor(images[2])
        if mask is not None:
            item["mask"] = mask_tensor(mask)
        if prior is not None:
            item["prior"] = torch.from_numpy(np.require(prior, np.float32, ["C", "W"]))[None]
        return item


def collate_pairs(items: list[dict[str, torch.Tensor] | None]) -> dict[str, torch.Tensor] | None:
    """Stack items, leaving out the ones that failed to load (None when all did)."""
    items = [item for item in items if item is not None]
    if not items:
        return None
    keys = set(items[0])
    if any(set(item) != keys for item in items):
        raise DataError("a batch mixes pairs with and without masks")
    return {key: torch.stack([item[key] for item in items]) for key in keys}
