"""Exports after a kill leave no temporary files; a NaN quality minimum is refused."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from sigma_iml.annotation.export import export_imdlbenco, export_webdataset
from sigma_iml.annotation.options import AnnotateOptions
from sigma_iml.annotation.runner import annotate
from sigma_iml.cli import app
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.errors import ConfigError


@pytest.fixture()
def run(make_dataset, tmp_path):
    out = tmp_path / "run"
    annotate(iter_manifest(make_dataset(n=2)), "pixdiff-otsu", out, progress=False)
    return out


def test_a_finished_export_removes_what_a_killed_one_left(run, tmp_path):
    dest, wds = tmp_path / "export", tmp_path / "wds"
    dest.mkdir()
    wds.mkdir()
    leftovers = [
        dest / ".imdlbenco.json.4242.tmp",  # the streamed lists, by process id
        dest / ".imdlbenco_manipulated.json.4242.tmp",
        dest / ".imdlbenco.negatives.4242.tmp",
        dest / ".test_datasets.json.a1b2c3d4e5f6.tmp",  # the atomic writer's
        wds / ".shard-000000.tar.a1b2c3d4e5f6.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    unrelated = dest / ".someone-elses.tmp"
    unrelated.write_bytes(b"x")
    assert export_imdlbenco(run, dest, negatives=True).manipulated == 2
    assert export_webdataset(run, wds, overwrite=True).manipulated == 2
    assert not any(path.exists() for path in leftovers)
    assert unrelated.exists()
    assert sorted(p.name for p in wds.iterdir()) == ["shard-000000.tar"]


@pytest.mark.parametrize("minimum", [math.nan, math.inf])
def test_a_quality_minimum_that_is_not_a_number_is_refused(run, tmp_path, minimum):
    with pytest.raises(ConfigError, match="finite"):
        export_imdlbenco(run, tmp_path / "e", min_quality=minimum)
    with pytest.raises(ConfigError, match="finite"):
        export_webdataset(run, tmp_path / "w", min_quality=minimum)
    with pytest.raises(ConfigError, match="min_quality"):
        AnnotateOptions.from_dict({"min_quality": minimum})
    result = CliRunner().invoke(
        app, ["export", "--run", str(run), "--out", str(tmp_path / "c"), "--min-quality", "nan"]
    )
    assert result.exit_code == 2 and "finite" in result.output
