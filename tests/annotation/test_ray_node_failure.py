"""The Ray engine under a dead node: a real two-node local cluster (two raylets), the
second node killed mid-run. The run finishes (Ray retries) or stops with a RunError;
either way a rerun ends with every pair done exactly once and the in-process masks."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from PIL import Image

from sigma_iml.annotation.layout import iter_run_records
from sigma_iml.annotation.ray_engine import RayEngine, ray_available
from sigma_iml.annotation.runner import annotate
from sigma_iml.data.formats.manifest import iter_manifest
from sigma_iml.errors import RunError

pytestmark = pytest.mark.skipif(not ray_available(), reason="ray[data] is not installed")


def test_a_node_killed_mid_run_loses_and_duplicates_nothing(make_dataset, tmp_path):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray.cluster_utils import Cluster

    manifest = make_dataset(n=10)
    spec = "pixdiff-fixed:tau=0.05"
    local, distributed = tmp_path / "local", tmp_path / "ray"
    annotate(iter_manifest(manifest), spec, local, shard_size=4, progress=False)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    second = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    killed = threading.Event()

    def kill_second_node(record):
        if not killed.is_set():
            killed.set()
            cluster.remove_node(second)

    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        try:
            annotate(
                iter_manifest(manifest),
                spec,
                distributed,
                shard_size=4,
                engine=RayEngine(window=3),
                progress=False,
                on_record=kill_second_node,
            )
        except RunError as err:
            assert "run the same command again" in str(err)
        assert killed.is_set()
    finally:
        ray.shutdown()
        cluster.shutdown()
    again = annotate(iter_manifest(manifest), spec, distributed, shard_size=4, progress=False)
    assert again.total_ok == 10 and again.total_failed == 0
    records = list(iter_run_records(distributed))
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(set(ids)) == [f"pair{i:03d}" for i in range(10)]
    for record in records:
        a = np.asarray(Image.open(local / record["mask"]))
        b = np.asarray(Image.open(distributed / record["mask"]))
        assert np.array_equal(a, b)
