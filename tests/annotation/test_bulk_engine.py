"""The streaming engine: shards, records, resume after a real ``kill -9``, locking,
input streams that stop early, and the CLI's new options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sigma_iml.annotation.layout import RunLock, iter_run_records, records_paths
from sigma_iml.annotation.runner import annotate
from sigma_iml.cli import app
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.data.pair import PairRef
from sigma_iml.data.run_layout import shard_dir
from sigma_iml.errors import ConfigError, DataError
from sigma_iml.methods import MaskMethod, Prediction, build_method


class _ParsingMethod(MaskMethod):
    """A graded map (the difference, scaled) plus a parse of the instruction in extras,
    as the SIGMA method reports it."""

    name = "parsing"
    batch_size = 3

    def predict_batch(self, pairs):
        out = []
        for pair in pairs:
            diff = np.abs(pair.edited.astype(np.float32) - pair.original.astype(np.float32))
            probability = np.clip(diff.max(axis=2) / 64.0, 0.0, 1.0)
            parse = {"action": "replace", "text": pair.instruction}
            out.append(Prediction(probability, {"parsed_instruction": parse, "map": probability}))
        return out


def test_outputs_are_sharded_with_full_records(make_dataset, tmp_path):
    manifest = make_dataset(n=5)
    out = tmp_path / "run"
    summary = annotate(
        iter_manifest(manifest),
        _ParsingMethod(),
        out,
        shard_size=2,
        save_probability=True,
        progress=False,
    )
    assert (summary.done, summary.failed, summary.shard_size) == (5, 0, 2)
    assert [p.parent.name for p in records_paths(out)] == ["00000", "00001", "00002"]
    records = list(iter_run_records(out))
    assert [(r["id"], r["index"], r["shard"]) for r in records] == [
        (f"pair{i:03d}", i, f"{i // 2:05d}") for i in range(5)
    ]
    for record in records:
        assert record["mask"].startswith(f"shards/{record['shard']}/masks/")
        mask = np.asarray(Image.open(out / record["mask"]))
        assert mask.shape == (40, 48) and set(np.unique(mask)) <= {0, 255}
        assert Image.open(out / record["probability"]).size == (48, 40)
        assert record["parsed_instruction"]["action"] == "replace"
        assert "map" not in record["extras"]  # arrays stay out of the records
        assert {"decode", "predict", "write"} <= set(record["timings"])
        assert 0.0 <= record["quality"]["confidence"] <= 1.0
        assert record["method"] == "parsing"
    assert set(summary.stage_seconds) >= {"decode", "predict", "write"}
    assert json.loads((out / "run.json").read_text())["shard_size"] == 2
    with pytest.raises(ConfigError, match="shard-size 2"):
        annotate(iter_manifest(manifest), _ParsingMethod(), out, shard_size=3, progress=False)


def test_a_second_run_on_the_same_folder_is_refused(make_dataset, tmp_path):
    manifest = make_dataset(n=1)
    out = tmp_path / "run"
    with RunLock(out), pytest.raises(ConfigError, match="another annotation run"):
        annotate(iter_manifest(manifest), build_method("pixdiff-otsu"), out, progress=False)


def test_a_reader_that_stops_at_a_damaged_file_keeps_what_came_before(make_dataset, tmp_path):
    refs = list(iter_manifest(make_dataset(n=3)))

    def stream():
        yield from refs[:2]
        raise DataError("shard is truncated", source="train-00001.tar")

    summary = annotate(stream(), build_method("pixdiff-otsu"), tmp_path / "run", progress=False)
    assert summary.done == 2 and "train-00001.tar" in summary.input_error
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["input_error"] == summary.input_error and saved["total_ok"] == 2


def test_bytes_inputs_get_copies_and_retry_failed_reruns_only_failures(tmp_path):
    import io

    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    rng = np.random.default_rng(0)
    original = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    edited = original.copy()
    edited[4:12, 4:12] = 255 - edited[4:12, 4:12]
    good = PairRef("good", original=png(original), edited=png(edited), instruction="x")
    bad = PairRef("bad", original=png(original), edited=b"\x89PNG broken")
    out = tmp_path / "run"
    first = annotate([good, bad], "pixdiff-otsu", out, save_originals=True, progress=False)
    assert (first.done, first.failed) == (1, 1)
    record = next(r for r in iter_run_records(out) if r["id"] == "good")
    assert Path(record["edited"]).is_file() and Path(record["original"]).is_file()
    assert np.array_equal(np.asarray(Image.open(record["original"])), original)
    fixed = PairRef("bad", original=png(original), edited=png(edited))
    again = annotate([good, fixed], "pixdiff-otsu", out, retry_failed=True, progress=False)
    assert (again.done, again.skipped, again.total_ok, again.total_failed) == (1, 1, 2, 0)
    lines = [r["id"] for r in iter_run_records(out)]
    assert sorted(lines) == ["bad", "bad", "good"]  # good was not redone


# A method that takes a while per pair, so the parent can kill the run mid-way.
_SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    from sigma_iml.annotation.local_engine import LocalEngine
    from sigma_iml.annotation.runner import annotate
    from sigma_iml.data.formats.manifest import iter_manifest
    from sigma_iml.methods import MaskMethod, build_method

    class Slow(MaskMethod):
        name = "slow"
        batch_size = 2
        def __init__(self):
            self.inner = build_method("pixdiff-fixed:tau=0.05")
        def spec(self):  # the run resumes with the inner method: run.json must agree
            return self.inner.spec()
        def predict_batch(self, pairs):
            time.sleep(0.02)
            return self.inner.predict_batch(pairs)

    annotate(iter_manifest(sys.argv[1]), Slow(), sys.argv[2], shard_size=7,
             save_probability=True, progress=False, engine=LocalEngine(workers=2))
    """
)


def _lines(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in records_paths(out))


def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(make_dataset, tmp_path):
    n = 40
    manifest = make_dataset(n=n, size=(96, 80))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for kill_after in (6, 19):
        child = subprocess.Popen(
            [sys.executable, "-c", _SLOW_RUN, str(manifest), str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while _lines(out) < kill_after and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert child.poll() is None, child.stderr.read().decode()
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert _lines(out) < n, "the run finished before it was killed"
    summary = annotate(
        iter_manifest(manifest), build_method("pixdiff-fixed:tau=0.05"), out, progress=False
    )
    assert summary.skipped >= 19 and summary.done + summary.skipped == n
    ids = [r["id"] for r in iter_run_records(out)]
    assert sorted(ids) == [f"pair{i:03d}" for i in range(n)], "an id is missing or duplicated"
    for record in iter_run_records(out):
        assert record["status"] == "ok"
        mask = np.asarray(Image.open(out / record["mask"]))  # decodes: not half-written
        assert mask.shape == (80, 96)
        assert record["shard"] == f"{record['index'] // 7:05d}"
    leftovers = [p for p in (out / "shards").rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    listing = json.loads((out / "imdlbenco.json").read_text())
    assert len(listing) == n and all(Path(m).is_file() for _, m in listing)


def test_cli_annotate_with_shards_quality_filter_and_webdataset(make_dataset, tmp_path):
    manifest = make_dataset(n=4)
    out, shards = tmp_path / "run", tmp_path / "wds"
    result = CliRunner().invoke(
        app,
        [
            "annotate",
            "--data",
            str(manifest),
            "-m",
            "pixdiff-otsu",
            "--out",
            str(out),
            "--shard-size",
            "3",
            "--batch-size",
            "2",
            "--min-quality",
            "0.5",
            "--export-webdataset",
            str(shards),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "done 4, failed 0" in result.output and "WebDataset: 4 pairs" in result.output
    assert len(records_paths(out)) == 2 and shard_dir(out, 1).is_dir()
    result = CliRunner().invoke(
        app, ["export", "--run", str(out), "--out", str(tmp_path / "x"), "--name", "mine"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "x" / "test_datasets.json").read_text()) == {
        "mine": str((tmp_path / "x" / "mine_manipulated.json").resolve())
    }
    result = CliRunner().invoke(app, ["export", "--run", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not an annotate run folder" in " ".join(result.output.split())
