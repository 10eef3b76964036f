"""``sigma-iml annotate`` on a corpus as a user has it, and what a run says: exit
statuses, run.json, refused reuse of a run folder, copies that keep their bytes."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from typer.testing import CliRunner

from sigma_iml.cli import app
from sigma_iml.cli.common import (
    EXIT_INPUT_ERROR,
    EXIT_NOTHING_DONE,
    EXIT_OK,
    EXIT_PAIRS_FAILED,
    EXIT_USAGE,
)

_spec = importlib.util.spec_from_file_location(
    "corpus_fixtures",
    Path(__file__).resolve().parents[1] / "data" / "formats" / "corpus_fixtures.py",
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

runner = CliRunner()
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _jpeg(value: int) -> bytes:
    rng = np.random.default_rng(value)
    array = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def omniedit_shards(folder: Path, shards: int = 2, rows: int = 2, bad: set[int] = frozenset()):
    """OmniEdit-Filtered-1.2M's schema as its shards hold it: JPEG bytes in
    ``{bytes, path}`` structs, a list of paraphrases, scores. Rows in ``bad`` (global
    numbers) hold no image."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        numbers = [shard * rows + r for r in range(rows)]
        table = {
            "omni_edit_id": pa.array([f"edit-{n}" for n in numbers]),
            "task": pa.array(["addition"] * rows),
            "src_img": pa.array(
                [None if n in bad else {"bytes": _jpeg(n), "path": None} for n in numbers], IMAGE
            ),
            "edited_img": pa.array(
                [{"bytes": _jpeg(n + 100), "path": None} for n in numbers], IMAGE
            ),
            "edited_prompt_list": pa.array([[f"add a hat {n}"] for n in numbers]),
            "o_score": pa.array([8.0] * rows),
        }
        pq.write_table(pa.table(table), folder / f"train-{shard:05d}-of-{shards:05d}.parquet")
    return folder


def annotate(data, out, *extra):
    return runner.invoke(
        app,
        [
            "annotate",
            "--data",
            str(data),
            "-m",
            "pixdiff-otsu",
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ],
    )


def test_an_omniedit_glob_annotates_without_options_and_keeps_jpeg_bytes(tmp_path):
    data = omniedit_shards(tmp_path / "omniedit")
    out = tmp_path / "run"
    result = annotate(data / "train-*.parquet", out, "--save-originals")
    assert result.exit_code == EXIT_OK, result.output
    assert "done 4, failed 0" in result.output
    run = json.loads((out / "run.json").read_text())
    assert run["method"].startswith("pixdiff-otsu")
    assert run["dataset"] == {
        "path": str((data / "train-*.parquet").resolve()),
        "format": "parquet",
    }
    records = [
        json.loads(line) for line in (out / "shards/00000/records.jsonl").read_text().splitlines()
    ]
    first = next(r for r in records if r["id"] == "edit-0")
    # The copies are the bytes that came in: a JPEG stays a JPEG, byte for byte.
    assert first["edited"].endswith(".jpg") and first["original"].endswith(".jpg")
    assert Path(first["edited"]).read_bytes() == _jpeg(100)
    assert Path(first["original"]).read_bytes() == _jpeg(0)
    assert first["instruction"] == "add a hat 0"
    # Resuming with the same method and data skips everything and exits 0.
    again = annotate(data / "train-*.parquet", out)
    assert again.exit_code == EXIT_OK and "skipped 4" in again.output


def test_a_run_folder_refuses_another_method_or_dataset(tmp_path):
    data = omniedit_shards(tmp_path / "omniedit", shards=1)
    out = tmp_path / "run"
    assert annotate(data, out).exit_code == EXIT_OK
    stored = (out / "run.json").read_text()
    other_method = runner.invoke(
        app,
        [
            "annotate",
            "--data",
            str(data),
            "-m",
            "pixdiff-fixed",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert other_method.exit_code == EXIT_USAGE
    message = " ".join(other_method.output.split())
    assert "holds the masks of method pixdiff-otsu" in message and "own --out folder" in message
    other_data = omniedit_shards(tmp_path / "elsewhere", shards=1)
    refused = annotate(other_data, out)
    assert refused.exit_code == EXIT_USAGE
    assert "holds the masks of dataset" in " ".join(refused.output.split())
    assert (out / "run.json").read_text() == stored  # the refused runs changed nothing


def test_exit_statuses_say_what_happened(tmp_path, make_dataset):
    # Some pairs failed: 4, the failures listed.
    data = omniedit_shards(tmp_path / "some-bad", shards=1, rows=3, bad={1})
    result = annotate(data, tmp_path / "a")
    assert result.exit_code == EXIT_PAIRS_FAILED, result.output
    assert "done 2, failed 1" in result.output and "'src_img' is null" in result.output
    # Every pair failed: 5.
    data = omniedit_shards(tmp_path / "all-bad", shards=1, rows=2, bad={0, 1})
    result = annotate(data, tmp_path / "b")
    assert result.exit_code == EXIT_NOTHING_DONE, result.output
    assert "no pair of the input has a mask" in result.output
    # The input lists no pair: 5.
    empty = tmp_path / "empty" / "manifest.jsonl"
    empty.parent.mkdir()
    empty.write_text("")
    result = annotate(empty, tmp_path / "c")
    assert result.exit_code == EXIT_NOTHING_DONE and "listed no pair" in result.output
    # The input cannot be read: 3.
    for missing in (tmp_path / "nowhere", tmp_path / "omniedit-*.parquet"):
        result = annotate(missing, tmp_path / "d")
        assert result.exit_code == EXIT_INPUT_ERROR, result.output
    ambiguous = tmp_path / "ambiguous"
    ambiguous.mkdir()
    image = pa.array([{"bytes": _jpeg(1), "path": None}], IMAGE)
    pq.write_table(
        pa.table(
            {"input_img": image, "output_img": image, "processed_img": image, "instruction": ["x"]}
        ),
        ambiguous / "a.parquet",
    )
    result = annotate(ambiguous, tmp_path / "e")
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "several presets: crispedit, promptfix" in " ".join(result.output.split())
    assert annotate(ambiguous, tmp_path / "e", "--columns", "crispedit").exit_code == EXIT_OK
    # A bad option: 2.
    result = annotate(ambiguous, tmp_path / "f", "--columns", "nosuch")
    assert result.exit_code == EXIT_USAGE and "unknown Parquet column preset" in result.output
    # Everything done: 0 (manifest, the earlier layout).
    assert annotate(make_dataset(n=2), tmp_path / "g").exit_code == EXIT_OK


def test_a_truncated_shard_exits_with_the_input_status(tmp_path):
    shard = corpus.write_tar(
        tmp_path / "s.tar",
        [(f"k{i}.edited.jpg", _jpeg(i)) for i in range(3)]
        + [(f"k{i}.original.jpg", _jpeg(i + 1)) for i in range(3)],
    )
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    result = annotate(shard, tmp_path / "run")
    assert result.exit_code == EXIT_INPUT_ERROR, result.output
    assert "the input stopped early" in result.output


def test_evaluate_takes_the_same_dataset_options(tmp_path, make_dataset):
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(make_dataset(n=2)),
            "-m",
            "pixdiff-otsu",
            "--columns",
            "omniedit",
        ],
    )
    assert result.exit_code == EXIT_INPUT_ERROR  # a manifest read as parquet: unreadable
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(make_dataset(n=2, name="b")),
            "-m",
            "pixdiff-otsu",
            "--keys",
            "x",
        ],
    )
    assert result.exit_code == EXIT_USAGE and "ROLE=NAME" in result.output
