"""`strategy_scope`, the batch-size and learning-rate helpers, and the
single-device behaviour of `gather_replicas` / `scale_loss_for_replicas`.

In-process and on every backend; the multi-device checks are in
`test_replica_equivalence.py` and the cluster tests, in fresh processes.
"""

import json

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import requires_jax
from conftest import requires_tensorflow

BACKEND = keras.backend.backend()
BACKEND_OF = {
    "mirrored": "tensorflow",
    "multiworker": "tensorflow",
    "tpu": "tensorflow",
    "jax_data_parallel": "jax",
}


def test_strategy_names_are_the_recipe_flag_values():
    assert kps.distribute.STRATEGY_NAMES == (
        "none",
        "mirrored",
        "multiworker",
        "tpu",
        "jax_data_parallel",
    )


def test_unknown_strategy_name_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="name.*'horovod'") as error:
        kps.distribute.strategy_scope("horovod")
    assert "jax_data_parallel" in str(error.value)


@pytest.mark.parametrize("name", sorted(BACKEND_OF))
def test_strategy_of_another_backend_is_rejected_naming_the_backend(name):
    if BACKEND_OF[name] == BACKEND:
        pytest.skip(f"{name!r} fits the {BACKEND} backend")
    with pytest.raises(ValueError, match=f"KERAS_BACKEND={BACKEND_OF[name]}") as error:
        kps.distribute.strategy_scope(name)
    assert f"{BACKEND!r}" in str(error.value)


def test_torch_is_told_that_keras_has_no_multi_device_trainer():
    if BACKEND != "torch":
        pytest.skip("message for the PyTorch backend")
    with pytest.raises(ValueError, match="no multi-device trainer for PyTorch"):
        kps.distribute.strategy_scope("mirrored")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"devices": ["cpu:0"]},
        {"coordinator_address": "10.0.0.1:1234"},
        {"num_processes": 2},
        {"process_id": 0},
        {"tpu": "my-tpu"},
    ],
)
def test_arguments_that_do_not_apply_to_the_strategy_are_rejected(kwargs):
    (argument,) = kwargs
    with pytest.raises(ValueError, match=f"`{argument}` does not apply to strategy 'none'"):
        kps.distribute.strategy_scope("none", **kwargs)


def test_none_scope_is_one_replica_and_leaves_the_loss_unchanged():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(2, 16, 8)).astype("float32")
    loss = kps.losses.BarlowTwinsLoss()
    expected = float(loss(z1, z2))
    with kps.distribute.strategy_scope("none") as scope:
        assert scope.num_replicas == 1
        assert scope.strategy is None and scope.distribution is None
        assert not scope.synchronized_batch_norm
        assert float(loss(z1, z2)) == expected
    assert "none" in repr(scope)


def test_scope_cannot_be_entered_twice_at_once():
    scope = kps.distribute.strategy_scope("none")
    with scope, pytest.raises(RuntimeError, match="already entered"):
        scope.__enter__()
    with scope:  # and can be entered again after leaving
        pass


def test_gather_and_scale_are_the_identity_on_one_device():
    z = np.arange(12, dtype="float32").reshape(4, 3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kps.distribute.gather_replicas(z)), z)
    assert kps.distribute.num_replicas_in_sync() == 1
    assert float(kps.distribute.scale_loss_for_replicas(2.5)) == 2.5
    assert float(kps.distribute.sum_over_replicas(2.5)) == 2.5


def test_global_batch_is_per_replica_batch_times_replicas():
    assert kps.distribute.global_batch_size(64, num_replicas=8) == 512
    assert kps.distribute.per_replica_batch_size(512, num_replicas=8) == 64
    with pytest.raises(ValueError, match="multiple of the number of replicas"):
        kps.distribute.per_replica_batch_size(100, num_replicas=8)
    with pytest.raises(ValueError, match="per_replica_batch_size"):
        kps.distribute.global_batch_size(0, num_replicas=2)
    with pytest.raises(ValueError, match="num_replicas"):
        kps.distribute.global_batch_size(8, num_replicas=1.5)


def test_learning_rate_scales_linearly_with_the_global_batch_per_256():
    assert kps.distribute.scale_learning_rate(0.2, 256) == pytest.approx(0.2)
    assert kps.distribute.scale_learning_rate(0.2, 1024) == pytest.approx(0.8)
    assert kps.distribute.scale_learning_rate(1e-3, 64, reference_batch_size=32) == pytest.approx(
        2e-3
    )
    with pytest.raises(ValueError, match="base_learning_rate"):
        kps.distribute.scale_learning_rate(-0.1, 256)


def test_scope_helpers_use_the_scope_replica_count():
    scope = kps.distribute.strategy_scope("none")
    assert scope.global_batch_size(32) == 32
    assert scope.per_replica_batch_size(32) == 32
    # 512 images per step on one replica: 0.2 * 512 / 256.
    assert scope.scale_learning_rate(0.2, per_replica_batch_size=512) == pytest.approx(0.4)


@requires_tensorflow
def test_mirrored_scope_creates_the_model_under_its_strategy():
    import tensorflow as tf

    scope = kps.distribute.strategy_scope("mirrored", devices=["/cpu:0"])
    # One strategy per set-up and process (collective keys would collide).
    assert kps.distribute.strategy_scope("mirrored", devices=["/cpu:0"]).strategy is scope.strategy
    with scope:
        assert tf.distribute.get_strategy() is scope.strategy
        model = kps.SSLModel(
            kps.backbones.SmallConvNet(input_shape=(8, 8, 1), widths=(4,)),
            kps.heads.Projector(hidden_dims=(8,), output_dim=4),
            kps.losses.BarlowTwinsLoss(),
        )
    assert scope.num_replicas == 1
    assert not scope.synchronized_batch_norm  # one replica: nothing to synchronise
    assert model.distribute_strategy is scope.strategy
    assert not tf.distribute.has_strategy()


@requires_jax
def test_jax_data_parallel_scope_sets_and_restores_the_distribution():
    import jax

    assert keras.distribution.distribution() is None
    with kps.distribute.strategy_scope("jax_data_parallel") as scope:
        current = keras.distribution.distribution()
        assert isinstance(current, keras.distribution.DataParallel)
        assert current is scope.distribution
        assert scope.num_replicas == jax.device_count()
        # One global SPMD program: batch statistics are global already.
        assert not scope.synchronized_batch_norm
    assert keras.distribution.distribution() is None


@requires_jax
def test_jax_multi_host_needs_address_count_and_id_together():
    with pytest.raises(ValueError, match="coordinator_address.*num_processes.*process_id"):
        kps.distribute.strategy_scope("jax_data_parallel", coordinator_address="127.0.0.1:1234")


@requires_jax
def test_jax_cluster_environment_variables_must_be_integers(monkeypatch):
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "127.0.0.1:1234")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="KERAS_DISTRIBUTION_NUM_PROCESSES.*'two'"):
        kps.distribute.strategy_scope("jax_data_parallel")


@requires_tensorflow
def test_multiworker_scope_created_after_tensorflow_ran_explains_the_order(monkeypatch):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow has run an op in this process
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    )
    with pytest.raises(RuntimeError, match="before TensorFlow runs any op"):
        kps.distribute.strategy_scope("multiworker")
