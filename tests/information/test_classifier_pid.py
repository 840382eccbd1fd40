"""Head-based PID atoms of a discrete target: NumPy references and closed forms."""

import math

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from keras_pid_ssl.information import ClassifierPIDHeads
from keras_pid_ssl.information import classifier_pid
from keras_pid_ssl.information import cross_entropy
from keras_pid_ssl.information import label_entropy
from keras_pid_ssl.utils.autodiff import gradient

LN2 = math.log(2.0)


def _numpy_cross_entropy(labels, logits):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(len(labels)), labels].mean()


def _numpy_entropy(labels, num_classes):
    p = np.bincount(labels, minlength=num_classes) / len(labels)
    p = p[p > 0]
    return -(p * np.log(p)).sum()


def _numpy_atoms(i1, i2, i12):
    return dict(
        i1=i1,
        i2=i2,
        i12=i12,
        redundancy=min(i1, i2),
        unique1=i1 - min(i1, i2),
        unique2=i2 - min(i1, i2),
        synergy=i12 - max(i1, i2),
    )


def _informative_logits(rng, labels, num_classes, boosts, scales):
    """Random logits, each head nudged towards the true label by its boost."""
    logits = []
    for boost, scale in zip(boosts, scales, strict=True):
        x = rng.normal(scale=scale, size=(len(labels), num_classes)).astype("float32")
        x[np.arange(len(labels)), labels] += boost
        logits.append(x)
    return logits


@pytest.mark.parametrize(
    "boosts",
    [
        (3.0, 1.0, 5.0),  # I1 > I2 > 0, the joint head best: synergy > 0
        (1.0, 3.0, 2.0),  # I2 > I1, the joint head worse than q2: I12 = I2
        (3.0, -2.0, 0.0),  # q2 worse than the prior: I2 clamped to 0
    ],
)
def test_atoms_are_the_tightest_cross_entropy_bounds(boosts):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=64)
    logits = _informative_logits(rng, labels, 5, boosts, (1.0, 0.5, 2.0))
    atoms = {k: float(v) for k, v in classifier_pid(labels, *logits).items()}
    h = _numpy_entropy(labels, 5)
    ce = [_numpy_cross_entropy(labels, x) for x in logits]
    i1, i2 = max(h - ce[0], 0.0), max(h - ce[1], 0.0)
    i12 = max(h - ce[2], i1, i2)
    np.testing.assert_allclose(atoms["label_entropy"], h, rtol=1e-5)
    np.testing.assert_allclose(
        [atoms["head_ce1"], atoms["head_ce2"], atoms["head_ce12"]], ce, rtol=1e-5
    )
    for name, value in _numpy_atoms(i1, i2, i12).items():
        np.testing.assert_allclose(atoms[name], value, rtol=1e-5, atol=1e-5, err_msg=name)
    # The cases above reach each branch: unequal informations, both clamps.
    assert abs(i1 - i2) > 0.1


def test_cross_entropy_matches_numpy():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=32)
    logits = rng.normal(scale=3.0, size=(32, 4)).astype("float32")
    np.testing.assert_allclose(
        float(cross_entropy(labels, logits)), _numpy_cross_entropy(labels, logits), rtol=1e-5
    )


def test_label_entropy_matches_numpy():
    labels = np.array([0, 0, 0, 1, 2, 2, 0, 1])
    np.testing.assert_allclose(
        float(label_entropy(labels, 4)), _numpy_entropy(labels, 4), rtol=1e-6
    )
    np.testing.assert_allclose(float(label_entropy(np.zeros(6, "int32"), 3)), 0.0, atol=1e-7)


def test_given_entropy_replaces_the_batch_histogram():
    labels = np.array([0, 0, 1, 1])
    sure = np.array([[9.0, -9.0], [9.0, -9.0], [-9.0, 9.0], [-9.0, 9.0]], "float32")
    atoms = classifier_pid(labels, sure, sure, sure, entropy=1.5)
    np.testing.assert_allclose(float(atoms["label_entropy"]), 1.5)
    np.testing.assert_allclose(float(atoms["redundancy"]), 1.5, atol=1e-4)


def _train_heads(z1, z2, labels, num_classes, epochs):
    heads = ClassifierPIDHeads(num_classes, joint_hidden_dims=(32,))
    in1, in2 = keras.Input(z1.shape[1:]), keras.Input(z2.shape[1:])
    model = keras.Model([in1, in2], list(heads(in1, in2)))
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True)] * 3,
    )
    model.fit([z1, z2], [labels] * 3, batch_size=128, epochs=epochs, verbose=0)
    return heads


def _sample(rng, n, shared):
    """Two binary features a, b; T = XOR(a, b), or T = a seen by both views."""
    a, b = rng.integers(0, 2, size=(2, n))
    noise = lambda: 0.1 * rng.normal(size=(n, 4))  # noqa: E731
    sign = lambda x: (2.0 * x - 1.0)[:, None] * np.ones((1, 4))  # noqa: E731
    if shared:
        return (sign(a) + noise()).astype("float32"), (sign(a) + noise()).astype("float32"), a
    return (sign(a) + noise()).astype("float32"), (sign(b) + noise()).astype("float32"), a ^ b


def _held_out_atoms(shared):
    rng = np.random.default_rng(1)
    z1, z2, labels = _sample(rng, 512, shared)
    heads = _train_heads(z1, z2, labels, num_classes=2, epochs=15)
    z1, z2, labels = _sample(rng, 1024, shared)
    logits = [keras.ops.convert_to_numpy(x) for x in heads(z1, z2)]
    atoms = classifier_pid(labels, *logits)
    return {k: float(v) for k, v in atoms.items()}, _numpy_entropy(labels, 2)


def test_xor_target_gives_synergy_and_no_redundancy():
    # Closed form: I(T; Z1) = I(T; Z2) = 0, I(T; Z1, Z2) = H(T) = ln 2.
    atoms, h = _held_out_atoms(shared=False)
    assert abs(h - LN2) < 0.01
    assert atoms["synergy"] > 0.8 * LN2, atoms
    assert atoms["redundancy"] < 0.05, atoms
    assert max(atoms["unique1"], atoms["unique2"]) < 0.05, atoms


def test_label_seen_by_both_views_is_redundant():
    # Closed form: I(T; Z1) = I(T; Z2) = I(T; Z1, Z2) = H(T): all redundancy.
    atoms, h = _held_out_atoms(shared=True)
    assert atoms["redundancy"] > 0.9 * h, atoms
    assert atoms["synergy"] < 0.05, atoms
    assert max(atoms["unique1"], atoms["unique2"]) < 0.05, atoms


def test_frozen_heads_give_the_same_logits_and_input_gradients():
    rng = np.random.default_rng(2)
    z1, z2 = rng.normal(size=(2, 8, 6)).astype("float32")
    heads = ClassifierPIDHeads(3, joint_hidden_dims=(5,))
    live = [keras.ops.convert_to_numpy(x) for x in heads(z1, z2)]
    frozen = [keras.ops.convert_to_numpy(x) for x in heads(z1, z2, frozen=True)]
    for a, b in zip(live, frozen, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # d sum(logits1) / d z1 = row sums of the kernel, for every sample.
    grad = gradient(lambda z: keras.ops.sum(heads(z, z2, frozen=True)[0]), z1)
    kernel = keras.ops.convert_to_numpy(heads.head1.kernel)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(grad), np.tile(kernel.sum(axis=1), (8, 1)), rtol=1e-5
    )


def test_heads_round_trip_through_config_and_reject_bad_arguments():
    heads = ClassifierPIDHeads(4, joint_hidden_dims=(8, 8))
    clone = ClassifierPIDHeads.from_config(heads.get_config())
    assert clone.num_classes == 4 and clone.joint_hidden_dims == (8, 8)
    assert kps.information.classifier_pid is classifier_pid
    with pytest.raises(ValueError, match="num_classes"):
        ClassifierPIDHeads(1)
    with pytest.raises(ValueError, match="joint_hidden_dims"):
        ClassifierPIDHeads(3, joint_hidden_dims=(0,))
