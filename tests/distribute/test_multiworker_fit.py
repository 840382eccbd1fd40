"""A two-worker `MultiWorkerMirroredStrategy` cluster on loopback ports.

Two processes, one CPU replica each, joined through `TF_CONFIG`, run
`programs/multiworker_fit.py`: a short `fit` of PIDModel on global batches of
16 images (8 per worker). Worker 0 also fits a copy on one device from the
same weights; the cluster's history must match it.
"""

import json

import keras
import numpy as np
import pytest
from distribute_subprocess import free_loopback_ports
from distribute_subprocess import program_env
from distribute_subprocess import run_cluster

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="MultiWorkerMirroredStrategy is tf.distribute (TensorFlow backend)",
)


@pytest.fixture(scope="module")
def worker_reports(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("multiworker")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_loopback_ports(2)]}
    envs = [
        program_env(
            "tensorflow",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        for index in range(2)
    ]
    return run_cluster(
        "multiworker_fit.py",
        [out_dir / f"worker{index}.json" for index in range(2)],
        [(), ()],
        envs,
    )


def test_cluster_has_one_replica_per_worker(worker_reports):
    assert [r["num_replicas"] for r in worker_reports] == [2, 2]
    assert [r["task_index"] for r in worker_reports] == [0, 1]


def test_workers_report_the_same_global_history(worker_reports):
    first, second = (r["history"] for r in worker_reports)
    assert set(first) == set(second)
    for key in first:
        np.testing.assert_allclose(first[key], second[key], rtol=1e-6, err_msg=key)


def test_two_worker_fit_matches_one_device_fit(worker_reports):
    history = worker_reports[0]["history"]
    single = worker_reports[0]["history_single"]
    assert set(history) == set(single)
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
    for key in single:
        np.testing.assert_allclose(history[key], single[key], rtol=1e-4, err_msg=key)
