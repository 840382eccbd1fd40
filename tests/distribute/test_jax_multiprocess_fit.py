"""A two-process JAX cluster on a loopback coordinator port.

Two processes, one CPU device each, join through
`strategy_scope("jax_data_parallel", coordinator_address=..., num_processes=2,
process_id=...)` (process 0) and through the `KERAS_DISTRIBUTION_*`
environment variables with the bare name (process 1), and run
`programs/jax_multiprocess_fit.py`: a short `fit` of PIDModel on global
batches of 16 images (8 per process). Process 0 also fits a copy on its own
device from the same weights; the cluster's history must match it.
"""

import keras
import numpy as np
import pytest
from distribute_subprocess import free_loopback_ports
from distribute_subprocess import program_env
from distribute_subprocess import run_cluster

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="jax.distributed multi-process training is JAX-backend specific",
)


@pytest.fixture(scope="module")
def process_reports(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("jax_cluster")
    (port,) = free_loopback_ports(1)
    # One CPU device per process: the replicas are the processes.
    env = program_env("jax", XLA_FLAGS="")
    return run_cluster(
        "jax_multiprocess_fit.py",
        [out_dir / f"process{index}.json" for index in range(2)],
        [(str(index), str(port)) for index in range(2)],
        [env, env],
    )


def test_cluster_has_two_processes_and_two_replicas(process_reports):
    assert [r["process_id"] for r in process_reports] == [0, 1]
    assert [r["process_count"] for r in process_reports] == [2, 2]
    assert [r["num_replicas"] for r in process_reports] == [2, 2]


def test_processes_report_the_same_global_history(process_reports):
    first, second = (r["history"] for r in process_reports)
    assert set(first) == set(second)
    for key in first:
        np.testing.assert_allclose(first[key], second[key], rtol=1e-6, err_msg=key)


def test_two_process_fit_matches_one_device_fit(process_reports):
    history = process_reports[0]["history"]
    single = process_reports[0]["history_single"]
    assert set(history) == set(single)
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
    for key in single:
        np.testing.assert_allclose(history[key], single[key], rtol=1e-4, err_msg=key)
