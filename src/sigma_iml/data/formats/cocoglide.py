"""The ``cocoglide`` format: CocoGlide, one of the SIGMA paper's evaluation benchmarks, in
its published layout (``docs/benchmarks.md`` gives the sources)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ..pair import PairRef
from .base import UniqueIds, inside_dataset, register_format

_GLIDE_FAKE = re.compile(r"glide_inpainting_val2017_(\d+)_up$")
COCOGLIDE_COLUMNS = ("real", "fake", "mask", "prompt")


def iter_cocoglide(path: Path) -> Iterator[PairRef]:
    """CocoGlide as released with TruFor (Guillaro et al., CVPR 2023).

    Layout (``path`` is the ``CocoGlide`` folder)::

        table.csv          columns real, fake, mask, prompt (UTF-8, may start with a BOM)
        real/<class>_<coco id>.png                        original (COCO val2017 crop)
        fake/glide_inpainting_val2017_<coco id>_up.png    GLIDE inpainting result
        mask/<class>_<coco id>_mask.png                   8-bit mask, white = inpainted

    The three file names differ, so pairs come only from ``table.csv`` rows, never from
    matching names. The instruction is the GLIDE text prompt (the COCO class name).
    Ids are ``cocoglide_<row>_<coco id>`` with the 1-based data row, four digits, as in
    ``../shared/data/cocoglide-dev`` (which holds the odd rows), so results line up;
    a fake name that is not GLIDE's gives ``cocoglide_<row>_<fake file stem>``.
    """
    root = Path(path)
    table = root / "table.csv"
    ids = UniqueIds()
    with open(table, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [c for c in COCOGLIDE_COLUMNS if c not in header]
        if missing:
            yield PairRef.invalid(
                "cocoglide_table",
                f"table.csv lacks column(s) {', '.join(missing)} (has {', '.join(header) or 'none'})",
                str(table),
            )
            return
        for row_number, raw in enumerate(reader, start=1):
            record = {(k or "").strip(): (v or "") for k, v in raw.items()}
            source = f"{table}:{row_number + 1}"  # +1: the header is line 1
            fake_name = record["fake"].strip()
            stem = PurePosixPath(fake_name.replace("\\", "/")).stem or f"row{row_number}"
            match = _GLIDE_FAKE.fullmatch(stem)
            item_id = f"cocoglide_{row_number:04d}_{match.group(1) if match else stem}"
            empty = [c for c in COCOGLIDE_COLUMNS if not record[c].strip()]
            if empty:
                yield ids.check(
                    PairRef.invalid(item_id, f"row {row_number}: empty {', '.join(empty)}", source)
                )
                continue
            resolved: dict[str, Path] = {}
            problem = None
            for column in ("real", "fake", "mask"):
                location, why = inside_dataset(root, record[column])
                if location is None:
                    problem = f"row {row_number}, column {column}: {why}"
                    break
                resolved[column] = location
            if problem:
                yield ids.check(PairRef.invalid(item_id, problem, source))
                continue
            yield ids.check(
                PairRef(
                    id=item_id,
                    original=resolved["real"],
                    edited=resolved["fake"],
                    instruction=record["prompt"].strip(),
                    mask=resolved["mask"],
                    source=source,
                    meta={
                        "benchmark": "cocoglide",
                        "coco_id": int(match.group(1)) if match else None,
                    },
                )
            )


def looks_like_cocoglide(path: Path) -> bool:
    table = Path(path) / "table.csv"
    if not table.is_file():
        return False
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return set(COCOGLIDE_COLUMNS) <= {name.strip() for name in header}


register_format("cocoglide", iter_cocoglide, looks_like_cocoglide)
