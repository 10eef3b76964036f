"""What every dataset format shares: the registry entry, path checks, unique ids and the
way a row with problems becomes an invalid ref.

A format module defines ``iter_<name>(path, **options)`` (streams
:class:`~sigma_iml.data.pair.PairRef` items) and usually ``looks_like_<name>(path)``,
and registers them with :func:`register_format`. Which sniffer is tried first is not
decided here but by ``DETECTION_ORDER`` in :mod:`sigma_iml.data.formats`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ...errors import ConfigError, ManifestError
from ..pair import PairRef


@dataclass(frozen=True)
class DatasetFormat:
    """A readable dataset layout: ``read(path, **options)`` streams refs, ``sniff(path)``
    says whether ``path`` looks like this layout (``None``: never guessed) and
    ``count(path, **options)``, where it is cheap, how many items ``read`` will yield
    (``None``: not known without reading everything)."""

    name: str
    read: Callable[..., Iterator[PairRef]]
    sniff: Callable[[Path], bool] | None
    description: str
    count: Callable[..., int] | None = None
    #: Its files lie inside the dataset folder, so a symbolic link out of it is refused
    #: (:func:`link_leaves`). False for IMDL-BenCo's lists, whose paths are absolute by
    #: design and may point anywhere.
    files_inside: bool = True


#: Every registered format by name, in registration order.
DATASET_FORMATS: dict[str, DatasetFormat] = {}


def register_format(
    name: str,
    read: Callable[..., Iterator[PairRef]],
    sniff: Callable[[Path], bool] | None,
    description: str | None = None,
    *,
    count: Callable[..., int] | None = None,
    files_inside: bool = True,
) -> None:
    """Add a format; ``description`` defaults to the first line of ``read``'s docstring."""
    if description is None:
        description = (inspect.getdoc(read) or name).strip().splitlines()[0]
    DATASET_FORMATS[name] = DatasetFormat(
        name, read, sniff, description, count=count, files_inside=files_inside
    )


def inside_dataset(root: Path, value: str) -> tuple[Path | None, str | None]:
    """``(root / value, None)`` when ``value`` stays inside ``root``, else ``(None, why)``.

    Dataset listings are untrusted: an absolute path or ``..`` could make a job read (and
    a report display) any file the job can read. The check is lexical; symbolic links
    that lead out of the folder are caught by the same rule on real paths
    (:func:`link_leaves`, applied to every format by
    :func:`~sigma_iml.data.readers.open_dataset`). Windows-style paths are checked too."""
    text = value.strip().replace("\\", "/") if isinstance(value, str) else ""
    if not text:
        return None, "empty path"
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).drive:
        return (
            None,
            f"path {value!r} is an absolute path; paths must be relative to the dataset folder",
        )
    normal = os.path.normpath(text)
    if normal == ".." or normal.startswith("../"):
        return None, f"path {value!r} escapes the dataset folder"
    return root / normal, None


def link_leaves(real_root: Path, path: Path) -> str | None:
    """Why ``path`` leaves the folder whose real path is ``real_root`` once symbolic
    links are followed, or ``None`` when it stays inside (or does not exist: a missing
    file is reported when it is decoded)."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as err:  # a link loop
        return f"path {path} cannot be resolved: {err}"
    if real == real_root or real_root in real.parents or not real.exists():
        return None
    return (
        f"{path} is a symbolic link to {real}, outside the dataset folder {real_root}; "
        "pass --allow-links to read files that links lead to"
    )


def resolve_inside(root: Path, value: str, *, item: str, field: str, source: str) -> Path:
    """:func:`inside_dataset`, raising :class:`ManifestError` naming the field."""
    if not isinstance(value, str):
        raise ManifestError(f"field {field!r} is not a string", item=item, source=source)
    path, why = inside_dataset(root, value)
    if path is None:
        raise ManifestError(f"field {field!r}: {why} ({root})", item=item, source=source)
    return path


class UniqueIds:
    """Turns a repeated id into an invalid ref instead of silently merging two items."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def check(self, ref: PairRef) -> PairRef:
        first = self._seen.get(ref.id)
        if first is None:
            self._seen[ref.id] = ref.source or ""
            return ref
        return PairRef.invalid(
            f"{ref.id}#dup@{ref.source}",
            f"id {ref.id!r} repeats the item listed at {first}",
            ref.source,
        )


def instruction_from_value(value: Any) -> tuple[str | None, list[str] | None, str | None]:
    """``(instruction, variants, problem)`` from a text or list-of-texts value: the first
    non-empty text is the instruction, all of them are the variants."""
    if value is None:
        return None, None, None
    if isinstance(value, str):
        return (value.strip() or None), None, None
    if isinstance(value, (list, tuple)):
        if not all(v is None or isinstance(v, str) for v in value):
            return None, None, "is a list holding non-text values"
        variants = [v.strip() for v in value if v and v.strip()]
        return (variants[0] if variants else None), variants, None
    return None, None, f"holds {type(value).__name__}, expected text or a list of texts"


def ref_unless_problems(item_id: str, problems: list[str], source: str, **fields: Any) -> PairRef:
    """``PairRef(id=item_id, source=source, **fields)``; when there are ``problems``, an
    invalid ref naming all of them. The problem does not repeat the location: ``source``
    (the file and row, or shard and sample) names it in every error built from the ref."""
    if problems:
        return PairRef.invalid(item_id, "; ".join(problems), source)
    return PairRef(id=item_id, source=source, **fields)


def parse_role_spec(
    text: str, roles: tuple[str, ...], what: str, value_form: str
) -> dict[str, str]:
    """``{role: value}`` from ``role=value`` parts separated by commas (empty parts are
    skipped), as ``--columns`` and ``--keys`` take them. Errors name the spec as ``what``
    (``"column spec"``) and the expected value as ``value_form`` (``"COLUMN"``): a part
    that is not ``ROLE=...`` with ``ROLE`` one of ``roles``, or a role named twice."""
    found: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        role, equals, value = (x.strip() for x in part.partition("="))
        if not equals or role not in roles:
            raise ConfigError(
                f"cannot read {what} {part!r} in {text!r}: expected ROLE={value_form} "
                f"with ROLE one of {', '.join(roles)}"
            )
        if role in found:
            raise ConfigError(f"{what} {text!r} names {role!r} twice")
        found[role] = value
    return found
