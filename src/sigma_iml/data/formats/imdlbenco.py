"""The ``imdlbenco`` format: IMDL-BenCo's JsonDataset list ``[[edited, mask | "Negative"],
...]``; a third element, when present, is the original image (IMDL-BenCo ignores it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from ...errors import DataError, ManifestError
from ..io import open_text
from ..pair import PairRef
from .base import register_format
from .folder import images_by_stem


def iter_imdlbenco(
    path: str | os.PathLike, *, originals: str | os.PathLike | None = None
) -> Iterator[PairRef]:
    """Read IMDL-BenCo's JsonDataset list ``[[edited, mask | "Negative"], ...]``.

    Relative paths are taken relative to the JSON file's folder (IMDL-BenCo resolves
    them against its working directory; absolute paths, what it writes, mean the same
    in both). The original image comes from a third element of the row when present,
    else from ``originals/<edited stem>.*`` when an ``originals`` folder is given. The
    list itself is parsed whole (it holds paths, not images); images load lazily."""
    listing = Path(path)
    try:
        with open_text(listing) as handle:
            rows = json.load(handle)
    except FileNotFoundError:
        raise ManifestError("IMDL-BenCo JSON not found", source=str(listing)) from None
    except json.JSONDecodeError as err:
        raise ManifestError(
            f"invalid JSON: {err.msg} at line {err.lineno}", source=str(listing)
        ) from None
    if not isinstance(rows, list):
        raise ManifestError("expected a JSON list of [edited, mask] rows", source=str(listing))
    original_index = images_by_stem(Path(originals)) if originals is not None else {}
    base = listing.parent
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        where = f"{listing.name}[{index}]"
        if not (
            isinstance(row, list) and 2 <= len(row) <= 3 and all(isinstance(x, str) for x in row)
        ):
            yield PairRef.invalid(
                where,
                "row must be [edited, mask] or [edited, mask, original] strings",
                source=where,
            )
            continue
        edited = Path(row[0]) if os.path.isabs(row[0]) else base / row[0]
        stem = edited.stem
        # Stems repeat across folders of one list; keep ids unique and stable.
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        item = stem if count == 0 else f"{stem}-{count}"
        negative = row[1] == "Negative"
        mask = None if negative else (Path(row[1]) if os.path.isabs(row[1]) else base / row[1])
        if len(row) == 3:
            original: Path | None = Path(row[2]) if os.path.isabs(row[2]) else base / row[2]
        else:
            original = original_index.get(stem)
        yield PairRef(
            id=item,
            original=original,
            edited=edited,
            mask=mask,
            negative=negative,
            source=where,
            problem=None
            if original is not None
            else (
                "the IMDL-BenCo list gives no original image for this row (add it as a third "
                "element, or pass an originals folder)"
            ),
        )


def looks_like_imdlbenco(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return False
    try:
        with open_text(path) as handle:
            head = handle.read(256).lstrip()
    except DataError:
        return False
    return head.startswith("[")


register_format(
    "imdlbenco",
    iter_imdlbenco,
    looks_like_imdlbenco,
    'IMDL-BenCo JsonDataset list [[edited, mask | "Negative"(, original)], ...]',
    files_inside=False,
)
