"""``--engine ray``: the same job on a local Ray cluster gives the in-process outputs.

Skips when Ray Data is absent (it is the optional extra ``ray``). Starting a local
cluster costs ~10 s and ~0.7 GB; the test still runs in every plain ``pytest`` run, since
it is the only check that the two engines agree."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from sigma_iml.annotation.layout import iter_run_records
from sigma_iml.annotation.ray_engine import RayEngine, ray_available
from sigma_iml.annotation.runner import annotate
from sigma_iml.data.formats.manifest import iter_manifest

pytestmark = pytest.mark.skipif(not ray_available(), reason="ray[data] is not installed")

# Fields that legitimately differ between two runs of the same job.
_VOLATILE = {"seconds", "timings"}


def _comparable(out):
    records = sorted(iter_run_records(out), key=lambda r: r["index"])
    return [{k: v for k, v in r.items() if k not in _VOLATILE} for r in records]


def test_ray_engine_matches_the_in_process_engine(make_dataset, tmp_path):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    manifest = make_dataset(n=7)
    root = manifest.parent
    (root / "edited" / "pair003.png").write_bytes(b"not a png")  # a failure to carry over
    spec = "pixdiff-fixed:tau=0.05"
    local, distributed = tmp_path / "local", tmp_path / "ray"
    expected = annotate(iter_manifest(manifest), spec, local, shard_size=3, progress=False)
    got = annotate(
        iter_manifest(manifest),
        spec,
        distributed,
        shard_size=3,
        engine=RayEngine(window=4),  # two windows: the actor pool is rebuilt between them
        progress=False,
    )
    assert (got.done, got.failed) == (expected.done, expected.failed) == (6, 1)
    mine, theirs = _comparable(local), _comparable(distributed)
    # Paths inside the run folder are relative, so the records match field for field.
    assert theirs == mine
    for record in mine:
        if record["status"] == "ok":
            a = np.asarray(Image.open(local / record["mask"]))
            b = np.asarray(Image.open(distributed / record["mask"]))
            assert np.array_equal(a, b)
    assert (local / "imdlbenco.json").read_text().replace(str(local), "") == (
        distributed / "imdlbenco.json"
    ).read_text().replace(str(distributed), "")
    # Resuming on Ray skips everything that is done.
    again = annotate(iter_manifest(manifest), spec, distributed, engine=RayEngine(), progress=False)
    assert (again.done, again.skipped) == (0, 7)
