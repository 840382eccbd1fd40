"""kps.distribute.replicas in one process: the dispatch on the replica context.

The multi-replica behaviour itself runs under a real `MirroredStrategy` in
subprocesses (test_replica_equivalence.py). Here a stand-in replica context
with a known `all_gather` and `all_reduce` checks, on any backend and in
milliseconds, what the helpers do with it: which context counts as
multi-replica, that a gathered tensor is never gathered twice, and the
divisions and sums the module docstring promises.
"""

import importlib
import types

import keras
import numpy as np
import pytest

replicas = importlib.import_module("keras_pid_ssl.distribute.replicas")

SUM = "SUM"


class FakeReplicaContext:
    """`num_replicas` replicas; replica r holds the local tensor plus 100 * r."""

    def __init__(self, num_replicas):
        self.num_replicas_in_sync = num_replicas
        self.calls = []

    def all_gather(self, x, axis):
        self.calls.append(("all_gather", axis))
        x = keras.ops.convert_to_numpy(x)
        parts = [x + 100.0 * r for r in range(self.num_replicas_in_sync)]
        return keras.ops.convert_to_tensor(np.concatenate(parts, axis=axis))

    def all_reduce(self, op, x):
        self.calls.append(("all_reduce", op))
        return keras.ops.convert_to_tensor(
            sum(keras.ops.convert_to_numpy(x) + 100.0 * r for r in range(self.num_replicas_in_sync))
        )


@pytest.fixture
def tf_context(monkeypatch):
    """Makes the module see the TensorFlow backend and a given replica context."""
    tf = pytest.importorskip("tensorflow")
    state = {"context": None}
    fake_backend = types.SimpleNamespace(backend=lambda: "tensorflow")
    monkeypatch.setattr(replicas, "keras", types.SimpleNamespace(backend=fake_backend))
    monkeypatch.setattr(tf.distribute, "get_replica_context", lambda: state["context"])
    monkeypatch.setattr(tf.distribute, "ReduceOp", types.SimpleNamespace(SUM=SUM))

    def use(context):
        state["context"] = context
        return context

    return use


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _z():
    return keras.ops.convert_to_tensor(np.arange(6, dtype="float32").reshape(3, 2))


def test_two_replicas_gather_in_replica_order_along_axis_0(tf_context):
    context = tf_context(FakeReplicaContext(2))
    z = _z()
    gathered = replicas.gather_replicas(z)
    np.testing.assert_array_equal(_numpy(gathered), np.concatenate([_numpy(z), _numpy(z) + 100]))
    assert context.calls == [("all_gather", 0)]


def test_a_gathered_tensor_is_not_gathered_again(tf_context):
    context = tf_context(FakeReplicaContext(2))
    gathered = replicas.gather_replicas(_z())
    assert replicas.gather_replicas(gathered) is gathered
    assert context.calls == [("all_gather", 0)]
    # Another tensor with the same values is a new local batch: it is gathered.
    again = replicas.gather_replicas(keras.ops.convert_to_tensor(_numpy(gathered)))
    assert tuple(again.shape) == (12, 2)
    assert len(context.calls) == 2


def test_two_replicas_scale_the_loss_by_one_half_and_sum_with_all_reduce(tf_context):
    context = tf_context(FakeReplicaContext(2))
    assert replicas.num_replicas_in_sync() == 2
    assert isinstance(replicas.num_replicas_in_sync(), int)
    np.testing.assert_allclose(float(replicas.scale_loss_for_replicas(3.0)), 1.5)
    np.testing.assert_allclose(
        float(replicas.scale_loss_for_replicas(keras.ops.convert_to_tensor(5.0))), 2.5
    )
    # all_reduce(SUM): 1 + (1 + 100) on the stand-in's two replicas.
    np.testing.assert_allclose(float(replicas.sum_over_replicas(1.0)), 102.0)
    assert context.calls == [("all_reduce", SUM)]


def test_four_replicas_divide_by_four(tf_context):
    tf_context(FakeReplicaContext(4))
    assert replicas.num_replicas_in_sync() == 4
    np.testing.assert_allclose(float(replicas.scale_loss_for_replicas(2.0)), 0.5)


@pytest.mark.parametrize("context", [None, FakeReplicaContext(1)], ids=["cross_replica", "one"])
def test_one_replica_or_cross_replica_context_is_the_identity(tf_context, context):
    tf_context(context)
    z = _z()
    assert replicas.num_replicas_in_sync() == 1
    assert replicas.gather_replicas(z) is z
    assert replicas.scale_loss_for_replicas(2.5) == 2.5
    assert replicas.sum_over_replicas(2.5) == 2.5
    if context is not None:
        assert context.calls == []


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_never_read_a_tensorflow_context(monkeypatch, backend):
    tf = pytest.importorskip("tensorflow")
    context = FakeReplicaContext(2)
    fake_backend = types.SimpleNamespace(backend=lambda: backend)
    monkeypatch.setattr(replicas, "keras", types.SimpleNamespace(backend=fake_backend))
    monkeypatch.setattr(tf.distribute, "get_replica_context", lambda: context)
    z = _z()
    assert replicas.num_replicas_in_sync() == 1
    assert replicas.gather_replicas(z) is z
    assert replicas.scale_loss_for_replicas(2.5) == 2.5
    assert replicas.sum_over_replicas(2.5) == 2.5
    assert context.calls == []
