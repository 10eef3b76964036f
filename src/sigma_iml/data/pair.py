"""Pairs: what a dataset lists (:class:`PairRef`) and what a method sees (:class:`Pair`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..errors import DataError, ImageDecodeError
from .images import DEFAULT_MAX_PIXELS, ImageSource, describe_source, load_image, load_mask


@dataclass(frozen=True)
class PairRef:
    """One (original, edited, instruction, mask) item as a dataset lists it, not yet decoded.

    Readers yield these lazily. ``original``/``edited``/``mask`` are paths, encoded
    bytes (:class:`~sigma_iml.data.images.EncodedImage`) or in-memory images.
    ``source`` says where the item was listed (``manifest.jsonl:12``). A row that could
    not be parsed still becomes a ref, with ``problem`` set: loading it raises a
    :class:`~sigma_iml.errors.DataError` so batch jobs record it like any other failure.
    """

    id: str
    original: ImageSource | None
    edited: ImageSource | None
    instruction: str | None = None
    mask: ImageSource | None = None
    #: The ground truth is known to be empty (IMDL-BenCo's "Negative"), no mask file.
    negative: bool = False
    source: str | None = None
    problem: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    #: The region the edit was meant to change, when the dataset says (a manifest's
    #: ``intended_mask`` column, MagicBrush's brush mask): the intent for
    #: ``annotate --faithfulness --intent mask`` (docs/faithfulness.md).
    intended_mask: ImageSource | None = None
    #: Where the tuple's original concept is on the original image and its edited
    #: concept on the edited image, when the dataset says (a manifest's
    #: ``original_concept_mask`` / ``edited_concept_mask`` columns, which ``make-pairs``
    #: writes): what training's ``priors: masks`` fuses into the intent map.
    original_concept_mask: ImageSource | None = None
    edited_concept_mask: ImageSource | None = None

    @property
    def has_mask(self) -> bool:
        return self.mask is not None or self.negative

    @classmethod
    def invalid(cls, id: str, problem: str, source: str | None = None) -> PairRef:
        return cls(id=id, original=None, edited=None, source=source, problem=problem)


@dataclass
class Pair:
    """A decoded pair: RGB uint8 arrays of equal size, and an optional bool mask.

    ``original`` has been resized to the edited image's size when the two differed
    (editors often change resolution); ``original_size`` keeps its decoded size then.
    """

    id: str
    original: np.ndarray
    edited: np.ndarray
    instruction: str | None = None
    mask: np.ndarray | None = None
    original_size: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: The intended region as a bool array (see :attr:`PairRef.intended_mask`).
    intended_mask: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the edited image (and of every map predicted for it)."""
        return int(self.edited.shape[1]), int(self.edited.shape[0])

    @property
    def original_resized(self) -> bool:
        return self.original_size is not None and self.original_size != self.size


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an RGB uint8 array to ``(width, height)``. Pillow's bilinear
    filter widens its support when shrinking, so downscaling is antialiased."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(tuple(size), Image.Resampling.BILINEAR))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask to ``(width, height)``."""
    if (mask.shape[1], mask.shape[0]) == tuple(size):
        return mask
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(
        tuple(size), Image.Resampling.NEAREST
    )
    return np.asarray(resized) > 127


def load_pair(
    ref: PairRef,
    *,
    with_mask: bool = True,
    require_original: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Pair:
    """Decode a :class:`PairRef`. Raises :class:`~sigma_iml.errors.DataError` naming the
    item and the file on any problem: a malformed row, a missing, corrupt or truncated
    image, a decompression bomb, or a mask whose size differs from the edited image."""
    if ref.problem is not None:
        raise DataError(ref.problem, item=ref.id, source=ref.source)
    if ref.edited is None:
        raise DataError("no edited image given", item=ref.id, source=ref.source)
    if ref.original is None and require_original:
        raise DataError("no original image given", item=ref.id, source=ref.source)

    def decode(kind: str, src: ImageSource) -> np.ndarray:
        try:
            return load_image(src, max_pixels=max_pixels)
        except ImageDecodeError as err:
            raise ImageDecodeError(
                f"{kind} image: {err.reason}", item=ref.id, source=err.source
            ) from err

    edited = decode("edited", ref.edited)
    size = (int(edited.shape[1]), int(edited.shape[0]))
    original_size = None
    if ref.original is not None:
        original = decode("original", ref.original)
        original_size = (int(original.shape[1]), int(original.shape[0]))
        original = resize_rgb(original, size)
    else:
        original = edited  # only reachable with require_original=False

    def decode_mask(kind: str, src: ImageSource) -> np.ndarray:
        try:
            decoded = load_mask(src, max_pixels=max_pixels)
        except ImageDecodeError as err:
            raise ImageDecodeError(f"{kind}: {err.reason}", item=ref.id, source=err.source) from err
        if (decoded.shape[1], decoded.shape[0]) != size:
            raise DataError(
                f"{kind} is {decoded.shape[1]}x{decoded.shape[0]} but the edited image is "
                f"{size[0]}x{size[1]}",
                item=ref.id,
                source=describe_source(src),
            )
        return decoded

    mask = None
    if with_mask and ref.mask is not None:
        mask = decode_mask("mask", ref.mask)
    elif with_mask and ref.negative:
        mask = np.zeros((size[1], size[0]), dtype=bool)
    intended_mask = None
    if with_mask and ref.intended_mask is not None:
        intended_mask = decode_mask("intended mask", ref.intended_mask)

    return Pair(
        id=ref.id,
        original=original,
        edited=edited,
        instruction=ref.instruction,
        mask=mask,
        original_size=original_size,
        meta=dict(ref.meta),
        intended_mask=intended_mask,
    )


def resize_pair(pair: Pair, size: tuple[int, int]) -> Pair:
    """The pair at another ``(width, height)``: images bilinear, mask nearest."""
    return Pair(
        id=pair.id,
        original=resize_rgb(pair.original, size),
        edited=resize_rgb(pair.edited, size),
        instruction=pair.instruction,
        mask=None if pair.mask is None else resize_mask(pair.mask, size),
        original_size=pair.original_size,
        meta=dict(pair.meta),
        intended_mask=None if pair.intended_mask is None else resize_mask(pair.intended_mask, size),
    )
