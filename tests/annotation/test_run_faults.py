"""Run-wide errors against per-pair errors: a full disk or an unloadable model stops the
run with exit status 6 and marks no pair failed, so a plain rerun does every pair."""

from __future__ import annotations

import errno
import json
import os

import pytest
from typer.testing import CliRunner

import sigma_iml.annotation.records as records_module
from sigma_iml.annotation.layout import iter_run_records
from sigma_iml.annotation.runner import annotate
from sigma_iml.cli import app
from sigma_iml.cli.common import EXIT_RUN_FAULT
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.errors import ConfigError, DataError, RunError, is_run_fault

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _statuses(out) -> dict[str, str]:
    return {r["id"]: r["status"] for r in iter_run_records(out)}


def test_run_faults_are_told_apart_from_a_pairs_own_errors():
    full = OSError(errno.ENOSPC, "No space left on device")
    assert is_run_fault(full)
    assert is_run_fault(OSError(errno.EROFS, "Read-only file system"))
    assert is_run_fault(ConfigError("cannot load the parser model '/nonexistent'"))
    wrapped = ValueError("saving failed")
    wrapped.__cause__ = full
    assert is_run_fault(wrapped)
    assert not is_run_fault(DataError("truncated PNG", item="a"))
    assert not is_run_fault(OSError(errno.ENAMETOOLONG, "File name too long"))
    assert not is_run_fault(ValueError("a map of the wrong size"))


def test_a_full_disk_stops_the_run_and_the_rerun_does_every_pair(
    make_dataset, tmp_path, monkeypatch
):
    manifest = make_dataset(n=6)
    out = tmp_path / "run"
    real_write = records_module.write_mask_png
    calls = []

    def fills_up(path, mask):
        calls.append(path)
        if len(calls) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, mask)

    monkeypatch.setattr(records_module, "write_mask_png", fills_up)
    with pytest.raises(RunError, match="No space left on device.*run the same command again"):
        annotate(iter_manifest(manifest), "pixdiff-otsu", out, shard_size=4, progress=False)
    statuses = _statuses(out)
    assert "failed" not in statuses.values()
    assert len(statuses) == 2  # the pairs written before the disk filled

    monkeypatch.setattr(records_module, "write_mask_png", real_write)
    again = annotate(iter_manifest(manifest), "pixdiff-otsu", out, shard_size=4, progress=False)
    assert (again.done, again.failed, again.skipped, again.total_ok) == (4, 0, 2, 6)
    records = list(iter_run_records(out))
    assert sorted(r["id"] for r in records) == [f"pair{i:03d}" for i in range(6)]


def test_an_unloadable_parser_model_exits_6_and_a_fixed_rerun_does_every_pair(
    make_dataset, tmp_path
):
    from sigma_iml.models.tiny import write_tiny_pipeline

    weights = write_tiny_pipeline(tmp_path / "tiny")
    manifest = make_dataset(n=3)
    out = tmp_path / "run"
    base = f"sigma:checkpoint={weights['sigma']},device=cpu,grounding=false"
    runner = CliRunner()
    command = ["annotate", "--data", str(manifest), "--out", str(out), "--no-progress"]
    bad = runner.invoke(app, [*command, "-m", f"{base},parser_model=/nonexistent"])
    assert bad.exit_code == EXIT_RUN_FAULT, bad.output
    assert "/nonexistent" in bad.output and "run the same command again" in bad.output
    assert "failed" not in _statuses(out).values()

    good = runner.invoke(app, [*command, "-m", base])
    assert good.exit_code == 0, good.output
    assert _statuses(out) == {f"pair{i:03d}": "ok" for i in range(3)}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["total_ok"], summary["total_failed"]) == (3, 0)
