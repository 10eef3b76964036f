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
    from sigma_iml.models.checkpoint import INSTRUCTION_SETTINGS
    from sigma_iml.testing import write_tiny_instruction_models, write_tiny_weights

    weights = write_tiny_weights(tmp_path / "tiny")
    write_tiny_instruction_models(tmp_path / "tiny")
    settings = {"parser": "llm", "parser_model": "../qwen2", "local_files_only": True}
    (weights["sigma"] / INSTRUCTION_SETTINGS).write_text(json.dumps(settings))
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


def test_ray_errors_become_a_message_that_says_a_rerun_resumes():
    ray = pytest.importorskip("ray")
    from sigma_iml.annotation.ray_engine import _stopped

    dead = ray.exceptions.NodeDiedError("node 1234 died")  # a dead raylet, as Ray reports it
    stopped = _stopped(ray, dead)
    assert isinstance(stopped, RunError)
    assert "the Ray cluster failed" in str(stopped) and "run the same command again" in str(stopped)
    # A fault raised inside a task arrives wrapped by Ray: the inner message is kept.
    inner = RunError("writing the outputs failed on a fault of the run: disk full")
    wrapper = ray.exceptions.UserCodeException("a map_batches task failed")
    wrapper.__cause__ = inner
    assert str(_stopped(ray, wrapper)) == str(inner)
    # Errors raised by the engine itself, and bugs, are left as they are.
    usage = ConfigError("3 model actors asked for, the cluster has 1 GPUs")
    assert _stopped(ray, usage) is usage
    bug = KeyError("x")
    assert _stopped(ray, bug) is bug


def test_a_ray_write_task_raises_a_full_disk_instead_of_failing_the_pair(
    make_dataset, tmp_path, monkeypatch
):
    pytest.importorskip("ray")
    import pickle

    from sigma_iml.annotation.ray_engine import _write_batch
    from sigma_iml.annotation.records import ItemWriter
    from sigma_iml.data.pair import load_pair
    from sigma_iml.methods import build_method

    ref = next(iter_manifest(make_dataset(n=1)))
    pair = load_pair(ref)
    prediction = build_method("pixdiff-otsu").predict_batch([pair])[0]
    batch = {
        "index": [0], "shard": [0], "ref": [pickle.dumps(ref)], "pair": [pickle.dumps(pair)],
        "prediction": [pickle.dumps(prediction)], "error": [""], "decode": [0.0], "predict": [0.0],
    }  # fmt: skip

    def full(path, mask):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(records_module, "write_mask_png", full)
    with pytest.raises(RunError, match="No space left"):
        _write_batch(batch, ItemWriter(tmp_path / "run", "pixdiff-otsu"))
