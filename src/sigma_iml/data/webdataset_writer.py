"""Writing pairs as WebDataset tar shards, in the convention the ``webdataset`` format
reads (:class:`~sigma_iml.data.formats.webdataset.WebDatasetKeys`).

This is the export side of the convention, kept out of ``formats/`` (which holds one
registered reader per format) and importing the naming rules from the reader, so that
whatever the writer writes the reader reads. The convention is documented in
``docs/corpora.md``.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from .formats.webdataset import (
    DEFAULT_WEBDATASET_KEYS,
    READER_PROVENANCE_KEYS,
    RESERVED_JSON_KEYS,
    WebDatasetKeys,
)
from .images import EncodedImage, ImageSource, load_image, load_mask
from .io import ARCHIVE_PNG_LEVEL, atomic_file, encode_png, fsync_folder, remove_temporaries
from .pair import PairRef

_IMAGE_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpg"),
    (b"WEBP", 8, "webp"),
    (b"GIF8", 0, "gif"),
    (b"BM", 0, "bmp"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
)


def _sniff_image_format(data: bytes) -> str | None:
    for signature, offset, extension in _IMAGE_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return extension
    return None


def _encode_image(
    source: ImageSource, *, is_mask: bool, item_id: str, role: str
) -> tuple[str, bytes]:
    """``(format extension, bytes)`` of one image. Encoded data (bytes, files) is written
    as it is; decoded images are written as PNG, masks binarised by the package's rule
    (:func:`~sigma_iml.data.images.load_mask`) to 0/255."""
    if isinstance(source, EncodedImage):
        data = source.data
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise DataError(
                f"cannot read the {role} image: {err}", item=item_id, source=str(source)
            ) from err
    elif isinstance(source, (Image.Image, np.ndarray)):
        if is_mask:
            image = load_mask(source)
        elif isinstance(source, Image.Image):
            image = source
        else:
            image = load_image(source)
        return "png", encode_png(image, compress_level=ARCHIVE_PNG_LEVEL)
    else:
        raise DataError(
            f"{role} image of type {type(source).__name__} cannot be written", item=item_id
        )
    image_format = _sniff_image_format(data)
    if image_format is None:
        raise DataError(
            f"{role} image is not PNG, JPEG, WebP, GIF, BMP or TIFF (judged by its first bytes)",
            item=item_id,
        )
    return image_format, data


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"a metadata value of type {type(value).__name__} cannot be stored as JSON")


def _writer_role_name(keys: WebDatasetKeys, role: str) -> str:
    names = getattr(keys, role)
    if not names:
        raise ConfigError(f"WebDatasetKeys.{role} is empty: the writer has no name to write")
    name = names[0]
    if role in ("original", "edited", "mask") and keys.role_of(f"{name}.png") != role:
        raise ConfigError(
            f"the first {role} name {name!r} must be a bare role name such as {role!r}"
        )
    return name


def _sample_members(sample: PairRef, keys: WebDatasetKeys) -> list[tuple[str, bytes]]:
    """Every member of one sample, ``(extension, data)``, encoded before anything is
    written so that a bad sample leaves no half-written sample behind."""
    if sample.problem is not None:
        raise DataError(
            f"cannot write an invalid item: {sample.problem}", item=sample.id, source=sample.source
        )
    if sample.edited is None:
        raise DataError(
            "cannot write an item without an edited image", item=sample.id, source=sample.source
        )
    members: list[tuple[str, bytes]] = []
    for role, source in (
        ("edited", sample.edited),
        ("mask", sample.mask),
        ("original", sample.original),
    ):
        if source is None:
            continue
        image_format, data = _encode_image(
            source, is_mask=role == "mask", item_id=sample.id, role=role
        )
        members.append((f"{_writer_role_name(keys, role)}.{image_format}", data))
    if sample.instruction is not None:
        members.append((_writer_role_name(keys, "instruction"), sample.instruction.encode("utf-8")))
    payload = {
        k: v
        for k, v in sample.meta.items()
        if k not in READER_PROVENANCE_KEYS and k not in RESERVED_JSON_KEYS
    }
    payload["id"] = sample.id
    if sample.negative and sample.mask is None:
        payload["negative"] = True
    try:
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as err:
        raise DataError(f"metadata cannot be written: {err}", item=sample.id) from err
    members.append((_writer_role_name(keys, "metadata"), text.encode("utf-8")))
    return members


_UNSAFE_KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")


def _sample_key(item_id: str, used: set[str]) -> str:
    """A member key for ``item_id``: no dots (the key ends at the first dot) and no
    slashes; made unique within the shard. The exact id is kept in the JSON member."""
    base = _UNSAFE_KEY_CHARACTERS.sub("_", item_id).strip("_")[:96] or "sample"
    key, counter = base, 1
    while key in used:
        key, counter = f"{base}_{counter}", counter + 1
    used.add(key)
    return key


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    # Fixed owner, mode and time: the same samples always give byte-identical shards.
    info.mtime = 0
    info.mode = 0o444
    archive.addfile(info, io.BytesIO(data))


def _write_shard(path: Path, samples: Iterable[PairRef], keys: WebDatasetKeys) -> None:
    """``samples`` as one shard at ``path``: written to a hidden temporary file, renamed
    into place only when complete and flushed to disk, so a reader never sees a partial
    shard. When a sample cannot be written nothing is left behind."""
    used_keys: set[str] = set()
    with (
        atomic_file(path) as handle,
        tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for sample in samples:
            members = _sample_members(sample, keys)
            key = _sample_key(sample.id, used_keys)
            for extension, data in members:
                _add_member(archive, f"{key}.{extension}", data)
    fsync_folder(path.parent)


def write_webdataset_shards(
    samples: Iterable[PairRef],
    out_dir: str | os.PathLike,
    *,
    max_per_shard: int = 1000,
    keys: WebDatasetKeys = DEFAULT_WEBDATASET_KEYS,
    prefix: str = "shard",
    overwrite: bool = False,
) -> list[Path]:
    """Write ``samples`` as WebDataset shards ``<prefix>-000000.tar``, ... in ``out_dir``,
    in the convention the ``webdataset`` format reads
    (:func:`~sigma_iml.data.formats.webdataset.iter_webdataset`), and return their paths.

    Each sample becomes ``<key>.edited.<fmt>``, ``<key>.mask.<fmt>`` and
    ``<key>.original.<fmt>`` (those it has), ``<key>.txt`` (the instruction) and
    ``<key>.json`` (``id``, ``negative`` and ``meta``). Encoded images are written as they
    are; arrays and PIL images as PNG. The key is the id made safe for file names; the
    exact id is in the JSON.

    Samples are streamed: one shard is open at a time, written to a hidden temporary file
    and renamed into place when complete. A sample that cannot be written (an invalid ref,
    no edited image, an unknown image format) raises :class:`~sigma_iml.errors.DataError`;
    the shards completed before it stay, the one in progress is removed. Existing
    ``<prefix>-*.tar`` shards in ``out_dir`` are an error unless ``overwrite``, which
    replaces them and removes those the new run did not write (after a failure too, so
    the folder never mixes old and new shards).
    """
    if max_per_shard < 1:
        raise ConfigError(f"max_per_shard must be at least 1, got {max_per_shard}")
    if not prefix or _UNSAFE_KEY_CHARACTERS.search(prefix):
        raise ConfigError(f"shard prefix {prefix!r} must be letters, digits, '_' or '-'")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    remove_temporaries(folder, f"{prefix}-*.tar")  # shards of a writer that was killed
    existing = sorted(folder.glob(f"{prefix}-*.tar"))
    if existing and not overwrite:
        raise DataError(
            f"{len(existing)} shards named {prefix}-*.tar already exist; pass overwrite=True to replace them",
            source=str(folder),
        )
    written: list[Path] = []
    remaining = iter(samples)
    try:
        while (first := next(remaining, None)) is not None:
            shard = folder / f"{prefix}-{len(written):06d}.tar"
            batch = itertools.chain([first], itertools.islice(remaining, max_per_shard - 1))
            _write_shard(shard, batch, keys)
            written.append(shard)
    finally:
        # Also after a failure: a folder mixing new shards with old ones would read as one
        # corpus. (``existing`` is only non-empty with ``overwrite``.)
        for stale in existing:
            if stale not in written:
                stale.unlink(missing_ok=True)
    return written
