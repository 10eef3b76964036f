"""Decoding images and masks: EXIF orientation, any colour mode to RGB, size guards.

Every image enters the package through :func:`load_image` or :func:`load_mask`, so the
same rules hold for every reader and method.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import ImageDecodeError

#: Pillow's own default limit (about 89.5 megapixels). Larger images are refused as a
#: possible decompression bomb unless the caller raises ``max_pixels``.
DEFAULT_MAX_PIXELS = 89_478_485

#: An image given to the decoder: a path, raw encoded bytes, or an already decoded image.
ImageSource = Union[str, os.PathLike, bytes, "EncodedImage", Image.Image, np.ndarray]


@dataclass(frozen=True)
class EncodedImage:
    """Encoded image bytes plus a human-readable name for error messages
    (e.g. ``shard-00003.parquet row 17 column source_img``)."""

    data: bytes
    name: str

    def __repr__(self) -> str:  # bytes would flood logs
        return f"EncodedImage({self.name!r}, {len(self.data)} bytes)"


#: Leading bytes of the encodings a run may keep as they came, and the suffix of each.
_KEPT_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
)
#: The EXIF tag that says how a viewer must rotate or mirror the stored pixels.
_EXIF_ORIENTATION = 0x0112


def kept_encoding(data: bytes) -> str | None:
    """The file suffix under which encoded image bytes can be kept as they are
    (``".jpg"``, ``".png"``, ``".gif"``, WebP's ``".webp"``), or ``None`` when they must
    be re-encoded: an unknown format, or an EXIF orientation other than "as stored"
    (the masks are at the rotated size :func:`load_image` gives, and not every reader of
    the copy applies the rotation). Only the header is parsed."""
    suffix = next((s for magic, s in _KEPT_SIGNATURES if data.startswith(magic)), None)
    if suffix is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        suffix = ".webp"
    if suffix is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):
        return None
    return suffix if orientation in (1, None) else None


def describe_source(source: ImageSource) -> str:
    """A short name of an image source, for error messages and records."""
    if isinstance(source, EncodedImage):
        return source.name
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    if isinstance(source, np.ndarray):
        return f"<array {source.dtype} {tuple(source.shape)}>"
    return str(source)


def _open(source: ImageSource, max_pixels: int) -> Image.Image:
    """Open and fully decode ``source`` with Pillow, mapping every failure to
    :class:`ImageDecodeError`. The global ``Image.MAX_IMAGE_PIXELS`` is never changed:
    the size is checked here against ``max_pixels`` right after the header is read."""
    name = describe_source(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageDecodeError(
                "image file not found; put the file at this path, or fix the path in the "
                "listing (paths in a manifest or parquet file are relative to its folder)",
                source=name,
            )
        if not path.is_file():
            raise ImageDecodeError("not a regular file", source=name)
        fp: object = path
    elif isinstance(source, EncodedImage):
        fp = io.BytesIO(source.data)
    elif isinstance(source, (bytes, bytearray)):
        fp = io.BytesIO(bytes(source))
    else:  # pragma: no cover - guarded by callers
        raise TypeError(f"unsupported image source {type(source).__name__}")

    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x its limit and raises above 2x; we apply our
            # own limit below, so its warning is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(fp)  # type: ignore[arg-type]
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image of {width}x{height} = {width * height} pixels exceeds the limit of "
                    f"{max_pixels} pixels (possible decompression bomb; raise max_pixels to allow it)",
                    source=name,
                )
            if width == 0 or height == 0:
                raise ImageDecodeError("image has zero width or height", source=name)
            # Truncated files must fail, never decode half an image silently.
            if ImageFile.LOAD_TRUNCATED_IMAGES:
                raise ImageDecodeError(
                    "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on in this process; refusing to "
                    "decode because truncated files would pass unnoticed",
                    source=name,
                )
            image.load()
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageDecodeError(f"possible decompression bomb: {err}", source=name) from err
    except UnidentifiedImageError as err:
        raise ImageDecodeError(
            "not a recognised image format (corrupt or not an image)", source=name
        ) from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        # Pillow reports truncation as OSError("image file is truncated ...").
        raise ImageDecodeError(
            f"cannot decode image (truncated or corrupt): {err}", source=name
        ) from err
    return image


def _to_rgb_array(image: Image.Image, *, drop_alpha: bool = False) -> np.ndarray:
    """Any Pillow mode to an ``(H, W, 3)`` uint8 array.

    - 16-bit and 32-bit integer greyscale (``I;16*``, ``I``) are scaled to 8 bits, not
      clipped (Pillow's own ``convert`` clips everything above 255 to white).
    - Float greyscale (``F``) is taken as [0, 1] when its maximum is at most 1, else as
      [0, 255].
    - Modes with transparency (``RGBA``, ``LA``, ``PA``, ``P`` with a transparent index)
      are composited over white, what a viewer shows; with ``drop_alpha`` (masks, see
      :func:`load_mask`) the alpha channel is ignored and each pixel keeps the colour
      stored under it, as Pillow's ``convert("RGB")`` does.
    - ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``1``, ``L`` and ``P`` go through Pillow.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        raw = np.asarray(image)
        arr = raw.astype(np.float64)
        # I;16 is 0..65535. Mode I holds 32-bit ints; a 16-bit PNG also decodes to I in
        # some Pillow versions, so scale by 16 bits whenever the data fits in 16 bits.
        if mode == "I" and raw.size and (raw.min() < 0 or raw.max() > 65535):
            lo, hi = float(raw.min()), float(raw.max())
            arr = (arr - lo) / max(hi - lo, 1.0) * 255.0
        else:
            arr = arr / 257.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        scale = 255.0 if arr.size and np.nanmax(arr) <= 1.0 else 1.0
        grey = np.clip(np.rint(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha and drop_alpha:
        with warnings.catch_warnings():  # "palette images with transparency ..." is moot
            warnings.simplefilter("ignore")
            return np.asarray(image.convert("RGB"))
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


def load_image(
    source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, drop_alpha: bool = False
) -> np.ndarray:
    """Decode an image to an ``(H, W, 3)`` uint8 RGB array with EXIF orientation applied.

    ``source`` is a path, encoded bytes, an :class:`EncodedImage`, a PIL image or an
    array (``(H, W)`` or ``(H, W, 1|3|4)``, uint8, or float in [0, 1]). Raises
    :class:`~sigma_iml.errors.ImageDecodeError` naming the source on any failure.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, drop_alpha=drop_alpha)
    if isinstance(source, Image.Image):
        image = source
    else:
        image = _open(source, max_pixels)
    name = describe_source(source)
    try:
        image = ImageOps.exif_transpose(image) or image
        rgb = _to_rgb_array(image, drop_alpha=drop_alpha)
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageDecodeError(f"cannot convert image to RGB: {err}", source=name) from err
    return np.ascontiguousarray(rgb)


def _array_to_rgb(array: np.ndarray, *, drop_alpha: bool = False) -> np.ndarray:
    arr = array
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(np.rint(np.nan_to_num(arr.astype(np.float64)) * 255.0), 0, 255).astype(
                np.uint8
            )
        elif arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        elif arr.dtype == np.uint16:
            arr = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        else:
            raise ImageDecodeError(
                f"unsupported array dtype {arr.dtype}", source=describe_source(array)
            )
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4 and drop_alpha:
        arr = arr[:, :, :3]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float64) / 255.0
        arr = np.rint(arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise ImageDecodeError(
            f"array of shape {tuple(array.shape)} is not an image (expected HxW or HxWx1/3/4)",
            source=describe_source(array),
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageDecodeError("image has zero width or height", source=describe_source(array))
    return np.ascontiguousarray(arr)


def load_mask(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ground-truth mask to an ``(H, W)`` bool array.

    IMDL-BenCo's rule: a pixel is manipulated when the mean of its RGB channels is above
    127.5 (``AbstractDataset.__getitem__``). Any colour mode is accepted; a bool array is
    taken as it is.

    Transparency is ignored, as IMDL-BenCo's ``pil_loader`` (``Image.convert("RGB")``)
    ignores it: a pixel counts by the colour stored under it, so a transparent black
    background is unedited (compositing it over white, as :func:`load_image` does for
    photos, would mark the whole background edited). Masks with alpha therefore score
    the same here as in IMDL-BenCo (docs/reliability.md).
    """
    if isinstance(source, np.ndarray) and source.dtype == np.bool_ and source.ndim == 2:
        return source.copy()
    rgb = load_image(source, max_pixels=max_pixels, drop_alpha=True)
    return rgb.astype(np.float32).mean(axis=2) > 127.5
