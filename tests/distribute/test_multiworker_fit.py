"""A two-worker `MultiWorkerMirroredStrategy` cluster on loopback ports.

Two processes, one CPU replica each, joined through `TF_CONFIG`, run
`programs/multiworker_fit.py`: a short `fit` of PIDModel on global batches of
16 images (8 per worker). Worker 0 also fits a copy on one device from the
same weights; the cluster's history must match it.
"""

import json
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from distribute_subprocess import PROGRAMS, failure_message, program_env

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="MultiWorkerMirroredStrategy is tf.distribute (TensorFlow backend)",
)


def free_loopback_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def worker_reports(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("multiworker")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_loopback_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    f"{PROGRAMS}/multiworker_fit.py",
                    str(out_dir / f"worker{index}.json"),
                ],
                env=program_env("tensorflow", TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        outputs = [w.communicate(timeout=240)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for index, (w, output) in enumerate(zip(workers, outputs)):
        assert w.returncode == 0, failure_message(f"worker {index}", w.returncode, output)
    reports = []
    for index in range(2):
        with open(out_dir / f"worker{index}.json") as f:
            reports.append(json.load(f))
    return reports


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
