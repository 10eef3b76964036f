"""``annotate``: masks at the edited size, records, IMDL-BenCo listing, failures, resume.

Records live per shard (``out/shards/00000/records.jsonl``, see
sigma_iml.data.run_layout); these tests read them through ``iter_run_records``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sigma_iml.annotation.layout import iter_run_records
from sigma_iml.annotation.local_engine import LocalEngine
from sigma_iml.annotation.options import AnnotateOptions
from sigma_iml.annotation.runner import annotate
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.data.run_layout import shard_dir
from sigma_iml.errors import ConfigError
from sigma_iml.methods import MaskMethod, Prediction, build_method


def _records(out: Path) -> list[dict]:
    return list(iter_run_records(out))


def test_annotate_writes_masks_records_and_listing(make_dataset, tmp_path):
    manifest = make_dataset(n=3, size=(50, 30))
    out = tmp_path / "out"
    summary = annotate(
        iter_manifest(manifest), build_method("pixdiff-fixed:tau=0.05"), out, progress=False
    )
    assert (summary.done, summary.failed, summary.skipped) == (3, 0, 0)
    records = _records(out)
    assert [r["id"] for r in records] == ["pair000", "pair001", "pair002"]
    for record in records:
        mask = Image.open(out / record["mask"])
        assert mask.mode == "L" and mask.size == (50, 30)
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        assert record["status"] == "ok" and record["error"] is None and record["seconds"] >= 0
    listing = json.loads((out / "imdlbenco.json").read_text())
    assert len(listing) == 3
    for edited, mask in listing:
        assert Path(edited).is_absolute() and Path(edited).is_file()
        assert Path(mask).is_absolute() and Path(mask).is_file()
    # The generated edits are exact rectangles of strong change: the baseline finds them.
    assert summary.scores["n"] == 3 and summary.scores["f1"] > 0.9
    assert json.loads((out / "summary.json").read_text())["total_ok"] == 3


def test_bad_items_are_recorded_and_the_run_goes_on(make_dataset, tmp_path):
    manifest = make_dataset(n=4)
    root = manifest.parent
    (root / "edited" / "pair001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.new("RGB", (5, 5)).save(root / "mask" / "pair002.png")  # wrong mask size
    with manifest.open("a") as handle:
        handle.write('{"id": "escape", "original": "../x.png", "edited": "e.png"}\n')
    out = tmp_path / "out"
    summary = annotate(iter_manifest(manifest), build_method("pixdiff-otsu"), out, progress=False)
    assert summary.done == 2 and summary.failed == 3
    by_id = {r["id"]: r for r in _records(out)}
    assert by_id["pair001"]["status"] == "failed" and "edited image" in by_id["pair001"]["error"]
    assert "mask is 5x5" in by_id["pair002"]["error"]
    assert "escapes the dataset folder" in by_id["escape"]["error"]
    assert len(json.loads((out / "imdlbenco.json").read_text())) == 2


class _Crashing(MaskMethod):
    """A real baseline that dies (like a killed process) after ``survive`` pairs."""

    name = "crashing"
    batch_size = 1

    def __init__(self, survive: int):
        self.inner = build_method("pixdiff-fixed:tau=0.05")
        self.calls = 0
        self.survive = survive

    def spec(self) -> str:  # the run resumes with the inner method: run.json must agree
        return self.inner.spec()

    def predict_batch(self, pairs):
        self.calls += 1
        if self.calls > self.survive:
            raise KeyboardInterrupt("simulated kill")
        return self.inner.predict_batch(pairs)


def test_interrupted_run_resumes_without_loss_or_duplicates(make_dataset, tmp_path):
    manifest = make_dataset(n=5)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        annotate(
            iter_manifest(manifest),
            _Crashing(survive=2),
            out,
            progress=False,
            engine=LocalEngine(workers=0),
        )
    assert [r["id"] for r in _records(out)] == ["pair000", "pair001"]
    # A crash mid-append leaves a torn line; the next run cuts it off.
    with (shard_dir(out, 0) / "records.jsonl").open("a") as handle:
        handle.write('{"id": "pair002", "sta')
    summary = annotate(
        iter_manifest(manifest), build_method("pixdiff-fixed:tau=0.05"), out, progress=False
    )
    assert (summary.done, summary.skipped) == (3, 2)
    ids = [r["id"] for r in _records(out)]
    assert sorted(ids) == [f"pair{i:03d}" for i in range(5)] and len(ids) == len(set(ids))
    again = annotate(
        iter_manifest(manifest), build_method("pixdiff-fixed:tau=0.05"), out, progress=False
    )
    assert (again.done, again.skipped) == (0, 5)


def test_failed_items_rerun_only_with_retry_failed(make_dataset, tmp_path):
    manifest = make_dataset(n=2)
    edited = manifest.parent / "edited" / "pair000.png"
    good = edited.read_bytes()
    edited.write_bytes(b"garbage")
    out = tmp_path / "out"
    annotate(iter_manifest(manifest), build_method("pixdiff-otsu"), out, progress=False)
    edited.write_bytes(good)
    plain = annotate(iter_manifest(manifest), build_method("pixdiff-otsu"), out, progress=False)
    assert (plain.done, plain.skipped) == (0, 2)
    retried = annotate(
        iter_manifest(manifest),
        build_method("pixdiff-otsu"),
        out,
        progress=False,
        retry_failed=True,
    )
    assert (retried.done, retried.skipped) == (1, 1)
    assert retried.total_ok == 2 and retried.total_failed == 0


def test_duplicate_ids_are_reported_not_overwritten(make_dataset, tmp_path):
    manifest = make_dataset(n=2)
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines + [lines[0]]) + "\n")
    summary = annotate(
        iter_manifest(manifest), build_method("pixdiff-otsu"), tmp_path / "o", progress=False
    )
    assert summary.done == 2 and summary.failed == 1
    assert "duplicate id 'pair000'" in summary.failures[0]["error"]


class _OneBadPair(MaskMethod):
    name = "one-bad"
    batch_size = 4

    def predict_batch(self, pairs):
        if any(p.id == "pair001" for p in pairs):
            raise RuntimeError("model blew up on pair001")
        return [Prediction(np.ones(p.edited.shape[:2], np.float32)) for p in pairs]


def test_a_method_error_fails_only_its_pair(make_dataset, tmp_path):
    manifest = make_dataset(n=4)
    summary = annotate(iter_manifest(manifest), _OneBadPair(), tmp_path / "o", progress=False)
    assert summary.done == 3 and summary.failed == 1
    assert "model blew up on pair001" in summary.failures[0]["error"]


def test_ids_that_are_not_file_names_get_safe_unique_names(make_dataset, tmp_path):
    manifest = make_dataset(n=2)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[0]["id"], rows[1]["id"] = "a/b", "a_b"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    annotate(iter_manifest(manifest), build_method("pixdiff-otsu"), tmp_path / "o", progress=False)
    masks = {r["id"]: r["mask"] for r in _records(tmp_path / "o")}
    assert (
        masks["a_b"] == "shards/00000/masks/a_b.png"
        and masks["a/b"] != masks["a_b"]
        and "/" not in masks["a/b"].removeprefix("shards/00000/masks/")
    )


def test_an_options_object_and_keyword_settings_make_the_same_run(make_dataset, tmp_path):
    manifest = make_dataset(n=3)
    options = AnnotateOptions(shard_size=2, save_probability=True, batch_size=2)
    given = annotate(
        iter_manifest(manifest),
        "pixdiff-otsu",
        tmp_path / "given",
        options,
        engine=LocalEngine(workers=0),
        progress=False,
    )
    keywords = annotate(
        iter_manifest(manifest),
        "pixdiff-otsu",
        tmp_path / "keywords",
        shard_size=2,
        save_probability=True,
        batch_size=2,
        progress=False,
    )
    assert (given.engine, given.shard_size, keywords.shard_size) == ("local", 2, 2)
    volatile = {"seconds", "timings"}
    assert [{k: v for k, v in r.items() if k not in volatile} for r in _records(given.out)] == [
        {k: v for k, v in r.items() if k not in volatile} for r in _records(keywords.out)
    ]
    # Keyword settings replace those of the object.
    merged = annotate(
        [], "pixdiff-otsu", tmp_path / "merged", options, shard_size=5, progress=False
    )
    assert merged.shard_size == 5


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"shard_sise": 2}, "shard_sise: unknown setting"),
        ({"quality_metric": "area"}, "quality_metric"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_settings_are_checked_before_anything_is_written(tmp_path, setting, message):
    with pytest.raises(ConfigError, match=message):
        annotate([], "pixdiff-otsu", tmp_path / "out", progress=False, **setting)
    assert not (tmp_path / "out").exists()
