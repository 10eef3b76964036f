"""The four bulk corpora as a user has them: parquet shards written by ``datasets`` (images
embedded as bytes, or kept as files beside the shard), read without naming a preset,
through globs and brace patterns."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sigma_iml.data.formats.parquet import (
    PARQUET_PRESETS,
    detect_column_map,
    iter_parquet,
    parse_column_spec,
)
from sigma_iml.data.formats.webdataset import iter_webdataset, parse_webdataset_keys
from sigma_iml.data.pair import load_pair
from sigma_iml.data.readers import (
    count_pairs,
    dataset_identity,
    detect_format,
    open_dataset,
    reader_options,
)
from sigma_iml.errors import ConfigError, DataError, ManifestError

_spec = importlib.util.spec_from_file_location(
    "corpus_fixtures", Path(__file__).with_name("corpus_fixtures.py")
)
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

#: Per corpus of the paper's bulk job: (original column, edited column, instruction
#: column, extra columns, expected id of row 0 of shard "train-00000-of-00002").
CORPORA = {
    "anyedit": ("image_file", "edited_file", "edit_instruction", {"edit_type": "add"}, None),
    "crispedit": ("input_img", "output_img", "instruction", {"type": "add"}, None),
    "omniedit": ("src_img", "edited_img", "edited_prompt_list", {"task": "addition"}, "omni-0"),
    "promptfix": ("input_img", "processed_img", "instruction", {"task_id": "t"}, None),
}


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_corpus_shard(folder: Path, name: str, shard: str, rows: int, *, embed: bool) -> Path:
    """A shard of ``name``'s schema written by ``datasets`` itself: ``Image`` features,
    either embedded bytes or (``embed=False``) paths of PNG files beside the shard."""
    datasets = pytest.importorskip("datasets")
    original_col, edited_col, text_col, extras, _ = CORPORA[name]
    images = {original_col: [], edited_col: []}
    for row in range(rows):
        for column, value in ((original_col, 10 * row), (edited_col, 10 * row + 100)):
            data = corpus.png(corpus.colour(value))
            if embed:
                images[column].append({"bytes": data, "path": None})
            else:
                relative = f"images/{shard}-{column}-{row}.png"
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_bytes(data)
                images[column].append(relative)
    text_feature = (
        datasets.List(datasets.Value("string")) if name == "omniedit" else datasets.Value("string")
    )
    texts = [
        [f"edit {row}", "paraphrase"] if name == "omniedit" else f"edit {row}"
        for row in range(rows)
    ]
    columns = {**images, text_col: texts, **{k: [v] * rows for k, v in extras.items()}}
    features = {
        original_col: datasets.Image(),
        edited_col: datasets.Image(),
        text_col: text_feature,
    }
    features.update({k: datasets.Value("string") for k in extras})
    if name == "omniedit":
        columns["omni_edit_id"] = [
            f"omni-{shard[-1]}{row}" if row else "omni-0" for row in range(rows)
        ]
        features["omni_edit_id"] = datasets.Value("string")
    path = folder / f"{shard}.parquet"
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(str(path))
    return path


@pytest.mark.parametrize("embed", [True, False], ids=["bytes", "paths"])
@pytest.mark.parametrize("name", sorted(CORPORA))
def test_datasets_written_shards_read_with_the_detected_preset(tmp_path, monkeypatch, name, embed):
    monkeypatch.chdir(tmp_path)  # datasets checks the relative image paths from here
    for shard in ("train-00000-of-00002", "train-00001-of-00002"):
        write_corpus_shard(tmp_path, name, shard, 2, embed=embed)
    pattern = str(tmp_path / "train-*.parquet")
    assert detect_format(pattern) == "parquet"
    assert detect_column_map(tmp_path / "train-00000-of-00002.parquet")[0] == name
    assert count_pairs(pattern) == 4
    refs = list(open_dataset(pattern))
    assert len(refs) == 4 and all(r.problem is None for r in refs), [r.problem for r in refs]
    expected_id = CORPORA[name][4] or "train-00000-of-00002-0"
    assert refs[0].id == expected_id
    assert [r.instruction for r in refs] == ["edit 0", "edit 1"] * 2
    if not embed:
        assert (
            refs[1].edited == tmp_path / "images" / f"train-00000-of-00002-{CORPORA[name][1]}-1.png"
        )
    pair = load_pair(refs[3])
    np.testing.assert_array_equal(pair.original, corpus.colour(10))
    np.testing.assert_array_equal(pair.edited, corpus.colour(110))


def test_two_fitting_presets_are_an_error_naming_both(tmp_path):
    image = pa.array([corpus.hf_image(corpus.png(corpus.colour(1)))], corpus.IMAGE_STRUCT)
    both = corpus.write_parquet(
        tmp_path / "both.parquet",
        {
            "input_img": image,
            "output_img": image,
            "processed_img": image,
            "instruction": pa.array(["x"]),
        },
    )
    with pytest.raises(ManifestError, match="fit several presets: crispedit, promptfix") as caught:
        iter_parquet(both)
    assert "--columns" in str(caught.value)
    (ref,) = iter_parquet(both, columns="promptfix")  # naming one settles it
    assert ref.problem is None
    neither = corpus.write_parquet(
        tmp_path / "neither.parquet", {"before": image, "after": image, "prompt": pa.array(["x"])}
    )
    with pytest.raises(ManifestError) as caught:
        iter_parquet(neither)
    message = str(caught.value)
    assert "(after, before, prompt) fit no preset" in message
    assert all(name in message for name in PARQUET_PRESETS)
    (ref,) = iter_parquet(neither, columns="original=before,edited=after,instruction=prompt")
    assert ref.problem is None and ref.instruction == "x"


def test_a_column_spec_names_every_role():
    spec = parse_column_spec("original=a, edited=b, instruction=, mask=m, id=x+y, meta=t")
    assert (spec.original, spec.edited, spec.instruction, spec.mask) == ("a", "b", None, "m")
    assert spec.id_columns == ("x", "y") and spec.meta_columns == ("t",)
    for bad in ("original=a", "source=a,edited=b", "original=a,original=b,edited=c", "a,b"):
        with pytest.raises(ConfigError):
            parse_column_spec(bad)


def test_path_only_cells_stay_inside_the_parquet_folder(tmp_path):
    edited = pa.array([corpus.hf_image(corpus.png(corpus.colour(2)))] * 3, corpus.IMAGE_STRUCT)
    file = corpus.write_parquet(
        tmp_path / "local" / "rows.parquet",
        {
            "src_img": pa.array(
                [
                    corpus.hf_image(None, "/etc/passwd"),
                    corpus.hf_image(None, "../secret.png"),
                    corpus.hf_image(None, "missing.png"),
                ],
                corpus.IMAGE_STRUCT,
            ),
            "edited_img": edited,
            "edited_prompt_list": pa.array([["x"]] * 3),
        },
    )
    absolute, escaping, missing = iter_parquet(file)
    assert "is an absolute path" in absolute.problem and "embed the images" in absolute.problem
    assert "escapes the dataset folder" in escaping.problem
    assert missing.problem is None
    with pytest.raises(DataError) as caught:
        load_pair(missing)
    message = str(caught.value)
    assert "missing.png" in message and "put the file at this path" in message


def test_brace_patterns_and_missing_patterns(tmp_path):
    for i in range(3):
        corpus.magicbrush_file(tmp_path / f"part-{i:05d}.parquet", start=3 * i, n=1)
    braces = str(tmp_path / "part-{00002..00001}.parquet")
    assert detect_format(braces) == "magicbrush"  # the benchmark layout comes first
    refs = list(open_dataset(braces, format="parquet", columns="magicbrush"))
    assert [r.id for r in refs] == ["1006-1", "1003-2"]  # pattern order
    assert count_pairs(braces, "parquet") == 2
    with pytest.raises(ManifestError, match="no file matches this pattern"):
        detect_format(str(tmp_path / "train-*.parquet"))
    with pytest.raises(DataError, match="not found"):
        detect_format(str(tmp_path / "part-{00000..00005}.parquet"))
    identity = dataset_identity(braces, "parquet", columns="magicbrush")
    assert identity == {"path": braces, "format": "parquet", "columns": "magicbrush"}


def test_reader_options_from_the_command_line(tmp_path):
    assert reader_options(None, "omniedit") == ("parquet", {"columns": "omniedit"})
    assert reader_options(None, None, "edited=tgt") == ("webdataset", {"keys": "edited=tgt"})
    assert reader_options("folder") == ("folder", {})
    with pytest.raises(ConfigError, match="--columns applies to the parquet format"):
        reader_options("webdataset", "omniedit")
    shard = corpus.write_tar(
        tmp_path / "s.tar",
        [
            ("a.input.jpg", _jpeg(corpus.colour(1))),
            ("a.output.jpg", _jpeg(corpus.colour(2))),
            ("a.prompt.txt", b"add a hat"),
        ],
    )
    (ref,) = iter_webdataset(
        shard, keys="original=input,edited=output|result,instruction=prompt.txt"
    )
    assert ref.problem is None and ref.instruction == "add a hat" and ref.original is not None
    keys = parse_webdataset_keys("edited=output|result")
    assert keys.edited == ("output", "result") and keys.original == ("original", "src", "source")
    with pytest.raises(ConfigError, match="ROLE one of"):
        parse_webdataset_keys("picture=x")
