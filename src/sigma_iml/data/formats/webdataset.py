"""The ``webdataset`` format: WebDataset tar shards, members grouped into samples by key
and named after :class:`WebDatasetKeys`, streamed one member at a time.

Samples that cannot be used become :meth:`PairRef.invalid` refs naming the shard, sample
and member. A truncated or corrupt shard raises a :class:`~sigma_iml.errors.DataError`
naming it, after every complete sample before the damage has been yielded.
:func:`~sigma_iml.data.webdataset_writer.write_webdataset_shards` writes the same
convention, so this reader reads the writer's output. The conventions are documented in
``docs/corpora.md``.
"""

from __future__ import annotations

import json
import os
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DataError
from ..images import EncodedImage
from ..io import is_hidden, is_path_pattern, list_inputs
from ..pair import PairRef
from .base import instruction_from_value, parse_role_spec, ref_unless_problems, register_format

_SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def _as_names(value: Iterable[str] | str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    return tuple(n.lower().lstrip(".") for n in names)


@dataclass(frozen=True)
class WebDatasetKeys:
    """How the members of a WebDataset sample are named.

    A member ``<key>.<extension>`` belongs to sample ``<key>`` (the key ends at the first
    dot of the file name, as in the ``webdataset`` package). An image role (``original``,
    ``edited``, ``mask``) matches an extension ``<name>.<image extension>`` for any of its
    names, e.g. ``src.jpg`` or ``original.png``; ``instruction`` and ``metadata`` match
    their extensions exactly (``txt``, ``json``). Matching is case-insensitive. The first
    name of each role is what
    :func:`~sigma_iml.data.webdataset_writer.write_webdataset_shards` writes.
    """

    original: tuple[str, ...] = ("original", "src", "source")
    edited: tuple[str, ...] = ("edited", "tgt", "target")
    mask: tuple[str, ...] = ("mask",)
    instruction: tuple[str, ...] = ("txt", "instruction.txt", "prompt.txt")
    metadata: tuple[str, ...] = ("json",)
    image_extensions: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
    _roles: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roles: dict[str, str] = {}
        for role in ("original", "edited", "mask", "instruction", "metadata", "image_extensions"):
            names = _as_names(getattr(self, role))
            object.__setattr__(self, role, names)
            if not names and role not in ("mask", "original"):
                raise ConfigError(f"WebDatasetKeys.{role} needs at least one name")
            if role == "image_extensions":
                continue
            for name in names:
                if name in roles:
                    raise ConfigError(
                        f"WebDataset member name {name!r} is given for both {roles[name]} and {role}"
                    )
                roles[name] = role
        object.__setattr__(self, "_roles", roles)

    def role_of(self, extension: str) -> str | None:
        """The role of a member extension (``"src.jpg"`` -> ``"original"``), or ``None``."""
        extension = extension.lower()
        role = self._roles.get(extension)
        if role is not None:
            return role
        base, _, image_extension = extension.rpartition(".")
        role = self._roles.get(base)
        if role in ("original", "edited", "mask") and image_extension in self.image_extensions:
            return role
        return None


DEFAULT_WEBDATASET_KEYS = WebDatasetKeys()

#: The roles a ``--keys`` spec may name (see :func:`parse_webdataset_keys`).
KEY_ROLES = ("original", "edited", "mask", "instruction", "metadata")


def parse_webdataset_keys(text: str) -> WebDatasetKeys:
    """:class:`WebDatasetKeys` from ``role=name`` pairs separated by commas, several
    names of one role joined by ``|``: ``original=src|input,edited=tgt,instruction=prompt.txt``.
    Roles left out keep their default names."""
    names = parse_role_spec(text, KEY_ROLES, "WebDataset key spec", "NAME[|NAME]")
    roles = {
        role: tuple(n.strip() for n in value.split("|") if n.strip())
        for role, value in names.items()
    }
    if not roles:
        raise ConfigError(f"WebDataset key spec {text!r} names no role")
    return WebDatasetKeys(**roles)


def resolve_webdataset_keys(keys: WebDatasetKeys | str) -> WebDatasetKeys:
    """``keys`` itself, or the keys a spec names (:func:`parse_webdataset_keys`)."""
    return keys if isinstance(keys, WebDatasetKeys) else parse_webdataset_keys(str(keys))


#: ``PairRef.meta`` keys the reader adds; the writer drops them, since they would be stale
#: in the new shards.
READER_PROVENANCE_KEYS = ("webdataset_shard", "webdataset_key", "webdataset_unused_members")
#: JSON keys with a meaning of their own, not copied into ``meta``.
RESERVED_JSON_KEYS = ("id", "instruction", "negative")


def _is_shard_name(path: Path) -> bool:
    return path.name.lower().endswith(_SHARD_SUFFIXES)


def list_webdataset_shards(path: str | os.PathLike) -> list[Path]:
    """The tar shards behind ``path``: one tar (``.tar``, ``.tar.gz``, ``.tgz``), every
    shard under a folder (recursively, sorted), a brace pattern
    (``shards/train-{000000..000099}.tar``, in pattern order) or a glob (sorted)."""
    text = os.fspath(path)
    return list_inputs(text, _is_shard_name, "folder holds no .tar shard")


def _has_tar_magic(path: Path) -> bool:
    """A POSIX/GNU tar header says ``ustar`` at byte 257; compressed shards are trusted by
    their gzip/bzip2/xz signature."""
    try:
        with path.open("rb") as handle:
            head = handle.read(262)
    except OSError:
        return False
    return (
        head[257:262] == b"ustar"
        or head[:2] == b"\x1f\x8b"
        or head[:3] == b"BZh"
        or head[:6] == b"\xfd7zXZ\x00"
    )


def looks_like_webdataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a tar shard, a folder holding one, or a brace/glob pattern
    matching one."""
    text = os.fspath(path)
    if is_path_pattern(text):
        try:
            return any(
                _is_shard_name(s) and _has_tar_magic(s) for s in list_webdataset_shards(text)
            )
        except DataError:
            return False
    root = Path(text)
    if root.is_file():
        return _is_shard_name(root) and _has_tar_magic(root)
    if root.is_dir():
        return any(
            f.is_file() and _is_shard_name(f) and not is_hidden(f, root) and _has_tar_magic(f)
            for f in root.rglob("*")
        )
    return False


def _split_member_name(name: str) -> tuple[str | None, str | None]:
    """``dir/key.ext.more`` -> ``("dir/key", "ext.more")``: the webdataset convention. Names
    without an extension, and hidden ones (macOS ``._*`` files), belong to no sample."""
    folder, _, base = name.rpartition("/")
    if "." not in base or base.startswith("."):
        return None, None
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension


class _HeaderErrorRecorder(tarfile.TarInfo):
    """A TarInfo that remembers why reading a header failed.

    In stream mode ``tarfile`` ends iteration silently when the data stops at a member
    boundary or a header is cut or garbled; only the end-of-archive zero block is a clean
    end. Subclasses are made per shard (:func:`_recording_tarinfo`) so each has its own log.
    """

    header_errors: list[Exception]

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.HeaderError as err:
            cls.header_errors.append(err)
            raise


def _recording_tarinfo() -> type[_HeaderErrorRecorder]:
    return type("_ShardTarInfo", (_HeaderErrorRecorder,), {"header_errors": []})


_TAR_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def iter_webdataset(
    path: str | os.PathLike, *, keys: WebDatasetKeys | str = DEFAULT_WEBDATASET_KEYS
) -> Iterator[PairRef]:
    """Stream :class:`PairRef` items out of WebDataset tar shards (see
    :func:`list_webdataset_shards`), one member in memory at a time.

    The id is the ``id`` of the sample's JSON member when it has one, else its key. The
    instruction is the text member, else the JSON's ``instruction``. A sample without an
    edited image, with two members of one role, or with unreadable text/JSON becomes a
    :meth:`PairRef.invalid` naming shard, key and member. A truncated or corrupt shard
    raises :class:`~sigma_iml.errors.DataError` naming it, after every complete sample
    before the damage has been yielded; call this per shard
    (:func:`list_webdataset_shards`) to carry on with the next one.
    """
    keys = resolve_webdataset_keys(keys)
    shards = list_webdataset_shards(path)  # path errors surface at the call
    return (ref for shard in shards for ref in _iter_shard(shard, keys))


def _iter_shard(shard: Path, keys: WebDatasetKeys) -> Iterator[PairRef]:
    try:
        handle = shard.open("rb")
    except OSError as err:
        raise DataError(f"cannot open shard: {err}", source=str(shard)) from err
    tarinfo = _recording_tarinfo()
    current_key: str | None = None
    current_members: list[tuple[str, str, bytes]] = []
    complete = 0
    member_name: str | None = None
    with handle:
        try:
            archive = tarfile.open(fileobj=handle, mode="r|*", tarinfo=tarinfo)
            for info in archive:
                # Stream mode keeps every TarInfo it has read; drop them so a shard of
                # any size reads in flat memory.
                archive.members = []
                if not info.isfile():
                    continue
                member_name = info.name
                key, extension = _split_member_name(info.name)
                if key is None or extension is None:
                    continue
                extracted = archive.extractfile(info)
                data = extracted.read() if extracted is not None else b""
                if key != current_key:
                    if current_key is not None:
                        yield _ref_from_sample(shard, current_key, current_members, keys)
                        complete += 1
                    current_key, current_members = key, []
                current_members.append((extension, info.name, data))
        except _TAR_READ_ERRORS as err:
            raise DataError(
                f"shard is truncated or corrupt: {err} (after {complete} complete samples; last "
                f"member reached: {member_name!r}; the sample {current_key!r} being read was not "
                "yielded)",
                source=str(shard),
            ) from err
    errors = tarinfo.header_errors
    if not errors or not isinstance(errors[-1], tarfile.EOFHeaderError):
        reason = (
            f"{type(errors[-1]).__name__}: {errors[-1]}" if errors else "no end-of-archive block"
        )
        raise DataError(
            f"shard is truncated or corrupt: it ends without the end-of-archive block ({reason}) "
            f"after {complete} complete samples; the last sample {current_key!r} may be incomplete "
            "and was not yielded",
            source=str(shard),
        )
    if current_key is not None:
        yield _ref_from_sample(shard, current_key, current_members, keys)


def _ref_from_sample(
    shard: Path, key: str, members: list[tuple[str, str, bytes]], keys: WebDatasetKeys
) -> PairRef:
    by_role: dict[str, list[tuple[str, bytes]]] = {}
    unused: list[str] = []
    for extension, name, data in members:
        role = keys.role_of(extension)
        if role is None:
            unused.append(extension)
        else:
            by_role.setdefault(role, []).append((name, data))
    problems: list[str] = []
    for role, entries in by_role.items():
        if len(entries) > 1:
            names = ", ".join(name for name, _ in entries)
            problems.append(f"{len(entries)} {role} members ({names}); expected one")

    def single(role: str) -> tuple[str, bytes] | None:
        entries = by_role.get(role)
        return entries[0] if entries else None

    metadata: dict[str, Any] = {}
    if (entry := single("metadata")) is not None:
        name, data = entry
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            problems.append(f"member {name!r} is not UTF-8 JSON: {err}")
        else:
            if isinstance(parsed, dict):
                metadata = parsed
            else:
                problems.append(
                    f"member {name!r} holds a JSON {type(parsed).__name__}, expected an object"
                )

    stored_id = metadata.get("id")
    item_id = stored_id if isinstance(stored_id, str) and stored_id else key
    meta: dict[str, Any] = {k: v for k, v in metadata.items() if k not in RESERVED_JSON_KEYS}

    instruction = None
    if (entry := single("instruction")) is not None:
        name, data = entry
        try:
            instruction = data.decode("utf-8").strip() or None
        except UnicodeDecodeError as err:
            problems.append(f"member {name!r} is not UTF-8 text: {err}")
    elif "instruction" in metadata:
        instruction, variants, problem = instruction_from_value(metadata["instruction"])
        if problem:
            problems.append(f"JSON field 'instruction' {problem}")
        if variants is not None:
            meta.setdefault("instruction_variants", variants)

    def image(role: str) -> EncodedImage | None:
        entry = single(role)
        if entry is None:
            return None
        name, data = entry
        if not data:
            problems.append(f"member {name!r} is empty")
            return None
        return EncodedImage(data, name=f"{shard.name} member {name}")

    original, edited, mask = image("original"), image("edited"), image("mask")
    if edited is None and single("edited") is None:
        expected = ", ".join(f"{key}.{n}.png" for n in keys.edited)
        problems.append(f"no edited image (expected a member such as {expected})")

    meta["webdataset_shard"] = str(shard)
    meta["webdataset_key"] = key
    if unused:
        meta["webdataset_unused_members"] = unused
    return ref_unless_problems(
        item_id,
        problems,
        f"{shard} sample {key!r}",
        original=original,
        edited=edited,
        instruction=instruction,
        mask=mask,
        negative=mask is None and metadata.get("negative") is True,
        meta=meta,
    )


register_format(
    "webdataset",
    iter_webdataset,
    looks_like_webdataset,
    "WebDataset tar shards: <key>.original/.edited/.mask.<image ext>, <key>.txt, <key>.json "
    "(keys= a WebDatasetKeys or a role=name spec)",
)
