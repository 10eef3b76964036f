"""Every file a run writes honours the umask: another user's training job given group
read access (umask 002) can read the masks, summary, report and exports it lists."""

from __future__ import annotations

import os
import stat

from sigma_iml.annotation.export import export_webdataset
from sigma_iml.annotation.runner import annotate
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.report import build_report


def test_outputs_get_the_umask_permissions(make_dataset, tmp_path):
    manifest = make_dataset(n=2)
    run = tmp_path / "run"
    previous = os.umask(0o002)
    try:
        annotate(iter_manifest(manifest), "pixdiff-otsu", run, progress=False, negatives=True)
        export_webdataset(run, run / "wds")
        build_report(run)
    finally:
        os.umask(previous)
    files = [p for p in run.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"summary.json", "imdlbenco.json", "records.jsonl", "shard-000000.tar"} <= names
    assert any(p.suffix == ".html" for p in files) and any(p.parent.name == "masks" for p in files)
    modes = {str(p.relative_to(run)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o664"}, modes
