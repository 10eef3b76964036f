"""The names of an annotation run folder, for the code that writes it (``annotation``)
and the code that reads it back (``report``) alike.

A run folder ``DIR`` holds::

    DIR/run.json                      shard size, method spec and dataset of the run
    DIR/shards/00000/records.jsonl    one JSON line per finished pair of that shard
    DIR/shards/00000/masks/<id>.png   0/255 masks at the edited image's size
    DIR/shards/00000/probabilities/   8-bit probability maps (--save-probability)
    DIR/shards/00000/edited/          PNG copies of edited images that came as bytes
    DIR/shards/00000/originals/       PNG copies of originals that came as bytes (--save-originals)
    DIR/shards/00000/panels/          instruction-branch panels (--save-intermediates)
    DIR/summary.json, DIR/imdlbenco.json, ...   written at the end of every run

Pair ``i`` of the input stream (counting every item the reader yields, bad ones too)
belongs to shard ``i // shard_size``. Paths inside records are relative to ``DIR``
(except ``edited``/``original`` when they point at the input files, which are absolute),
so a run folder can be moved.
"""

from __future__ import annotations

from pathlib import Path

SHARDS = "shards"
RECORDS = "records.jsonl"
MASKS = "masks"
PROBABILITIES = "probabilities"
EDITED_COPIES = "edited"
ORIGINAL_COPIES = "originals"
PANELS = "panels"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"


def shard_name(shard: int) -> str:
    return f"{shard:05d}"


def shard_dir(out: Path, shard: int) -> Path:
    return Path(out) / SHARDS / shard_name(shard)
