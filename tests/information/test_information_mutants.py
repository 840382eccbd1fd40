"""kps.information: checks that kill the mutants the other information tests let live.

Each test names what it kills (docs/testing.md). Argument checks are matched
with the argument's name in backticks and the received value; warnings with
their full reason and the caller's file; shapes against the documented ones.
"""

import os
import warnings

import keras
import numpy as np
import pytest

from keras_pid_ssl.information import ClassifierPIDHeads
from keras_pid_ssl.information import classifier_pid
from keras_pid_ssl.information import gaussian_mutual_information
from keras_pid_ssl.information import gaussian_pid
from keras_pid_ssl.information import per_dimension_pid


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda z: per_dimension_pid(z, z, z, epsilon=0.0), r"`epsilon`.*epsilon=0\.0"),
        (lambda z: per_dimension_pid(z, z, z, delta=1.0), r"`delta`.*delta=1\.0"),
        (lambda z: gaussian_pid(z, z, z, estimator="knn"), r"`estimator` must be one of"),
        (lambda z: gaussian_pid(z, z, z, "full", epsilon=-1.0), r"`epsilon`.*epsilon=-1\.0"),
        (lambda z: gaussian_pid(z, z, z, "full", ridge=0.0), r"`ridge`.*ridge=0\.0"),
        (lambda z: gaussian_mutual_information(z, z, epsilon=0.0), r"`epsilon`.*=0\.0"),
        (lambda z: gaussian_mutual_information(z, z, ridge=-2.0), r"`ridge`.*ridge=-2\.0"),
    ],
)
def test_bad_arguments_are_refused_by_name(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call(_normal(16, 3))


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda z, r: per_dimension_pid(r, z, z), "z1"),
        (lambda z, r: per_dimension_pid(z, z, r), "t"),
        (lambda z, r: gaussian_pid(z, r, z, "full"), "z2"),
        (lambda z, r: gaussian_pid(z, z, r, "full"), "t"),
        (lambda z, r: gaussian_mutual_information(z, r), "b"),
    ],
)
def test_ragged_lists_name_the_argument(call, name):
    z = _normal(4, 2)
    with pytest.raises(ValueError, match=rf"^`{name}` must be a rectangular array"):
        call(z, [[1.0, 2.0], [3.0]])


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda z, w: per_dimension_pid(z, z, w), "per_dimension_pid"),
        (lambda z, w: per_dimension_pid(w, z, z), "per_dimension_pid"),
        (lambda z, w: gaussian_pid(z, w, z, "full"), "gaussian_pid"),
        (lambda z, w: gaussian_pid(z, z, w[None], "full"), "gaussian_pid"),
        (lambda z, w: gaussian_mutual_information(w[None], z), "gaussian_mutual_information"),
        (lambda z, w: gaussian_mutual_information(z, w[None]), "gaussian_mutual_information"),
    ],
)
def test_inputs_of_the_wrong_shape_are_refused_naming_the_function(call, name):
    """A (N, 1) target would broadcast silently against (N, D) sources."""
    z = _normal(16, 3)
    with pytest.raises(ValueError, match=rf"^`{name}` expects"):
        call(z, _normal(16, 1))


@pytest.mark.parametrize(
    "call",
    [
        lambda z, s: gaussian_pid(z, z, s, "full"),
        lambda z, s: gaussian_mutual_information(z, s),
    ],
)
def test_inputs_of_another_batch_size_are_refused_naming_the_function(call):
    z = _normal(16, 3)
    with pytest.raises(ValueError, match=r"^`gaussian_\w+` expects inputs with the same batch"):
        call(z, _normal(12, 3))


def _warning(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if "Gaussian PID estimator" in str(w.message)]


@pytest.mark.parametrize(
    "call,n,d,message",
    [
        (
            lambda z: per_dimension_pid(z, z, z),
            7,
            5,
            "The diagonal Gaussian PID estimator got N=7 samples for D=5 dimensions (N < 10: "
            "each correlation has a standard error of about 1/sqrt(N)). Its atoms are "
            "unreliable and biased upwards; use batches of at least 10 samples.",
        ),
        (
            lambda z: gaussian_pid(z, z, z, "full"),
            9,
            5,
            "The full Gaussian PID estimator got N=9 samples for D=5 dimensions (N < 2D: the "
            "sample covariance of (Z1, Z2) is singular and the ridge decides I12). Its atoms "
            "are unreliable and biased upwards; use batches of at least 10 samples.",
        ),
        (
            lambda z: gaussian_mutual_information(z, z[:, :4]),
            17,
            5,
            "The full (mutual information) Gaussian PID estimator got N=17 samples for D=9 "
            "dimensions (N < 2D: the sample covariance of (A, B) is singular and the ridge "
            "decides I(A; B)). Its atoms are unreliable and biased upwards; use batches of "
            "at least 18 samples.",
        ),
    ],
)
def test_small_batch_warnings_give_reason_threshold_and_caller(call, n, d, message):
    """Kills a changed reason, estimator name or threshold (2 D for the full
    estimators, D = dim(A) + dim(B) for the mutual information), and a
    stacklevel that does not point at the caller."""
    (warning,) = _warning(lambda: call(_normal(n, d, seed=n)))
    assert str(warning.message) == message
    # Under mutmut every function is wrapped in a trampoline, two frames deeper:
    # there tools/named_mutants.py checks the stacklevel instead.
    if "MUTANT_UNDER_TEST" not in os.environ:
        assert warning.filename == __file__
    # One more sample and the full estimators are quiet (the threshold is 2 D).
    if "full" in message:
        assert _warning(lambda: call(_normal(n + 1, d, seed=n))) == []


def test_symbolic_inputs_of_unknown_batch_size_give_symbolic_results():
    """Kills an unknown (None) batch size read as an int, or compared with the
    threshold, before the diagonal estimator runs."""
    x = keras.Input((4,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning: N is unknown
        out = per_dimension_pid(x, x, x)
    assert all(isinstance(v, keras.KerasTensor) for v in out.values())
    assert tuple(out["synergy"].shape) == (4,)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow graphs")
def test_full_estimators_trace_with_unknown_batch_and_feature_sizes():
    """Kills an unknown feature dimension doubled into the warning threshold
    (2 * None) in the full estimators. Only a TF graph has such shapes."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, None), tf.float32)

    @tf.function(input_signature=[spec, spec, spec])
    def both(z1, z2, t):
        return gaussian_pid(z1, z2, t, "full")["synergy"], gaussian_mutual_information(z1, t)

    z = _normal(32, 3)
    synergy, mi = both(z, z, z)
    assert float(synergy) < 1e-3
    np.testing.assert_allclose(float(mi), float(gaussian_mutual_information(z, z)), rtol=1e-5)


def test_classifier_pid_batch_entropy_counts_classes_from_the_logits():
    """Kills num_classes taken from another axis of the logits: a batch of 4
    with labels up to 5 out of 8 classes."""
    labels = np.array([0, 5, 5, 2])
    logits = np.zeros((4, 8), "float32")
    atoms = classifier_pid(labels, logits, logits, logits)
    p = np.array([0.25, 0.5, 0.25])
    np.testing.assert_allclose(float(atoms["label_entropy"]), -(p * np.log(p)).sum(), rtol=1e-6)
    # Uniform heads: CE = ln 8 > H, so every information is 0.
    np.testing.assert_allclose(float(atoms["head_ce1"]), np.log(8), rtol=1e-6)
    assert float(atoms["i12"]) == 0.0


def test_heads_refuse_non_int_class_counts_and_bad_widths_by_name():
    with pytest.raises(ValueError, match=r"`num_classes` must be an int >= 2.*3\.0"):
        ClassifierPIDHeads(3.0)
    with pytest.raises(ValueError, match=r"`joint_hidden_dims`.*-4"):
        ClassifierPIDHeads(3, joint_hidden_dims=(8, -4))


def test_heads_build_for_views_of_different_widths_and_keep_their_weights():
    """Kills z2's shape ignored or taken from z1 in build, a layer left unbuilt
    (Keras would rebuild it on call and draw new weights), and the output
    shapes' batch axis."""
    heads = ClassifierPIDHeads(3, joint_hidden_dims=(5,))
    heads.build((None, 4), (None, 6))
    assert heads.built
    shapes = [tuple(w.shape) for w in heads.weights]
    assert shapes == [(4, 3), (3,), (6, 3), (3,), (10, 5), (5,), (5, 3), (3,)]
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in heads.weights]
    z1, z2 = _normal(8, 4), _normal(8, 6, seed=1)
    logits1, logits2, _ = heads(z1, z2)
    after = [np.array(keras.ops.convert_to_numpy(w)) for w in heads.weights]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(logits2), z2 @ before[2] + before[3], rtol=1e-5, atol=1e-6
    )
    assert heads.compute_output_shape((None, 4), (None, 6)) == ((None, 3),) * 3
    one = ClassifierPIDHeads(3, joint_hidden_dims=(5,))
    one.build((None, 4))  # z2 defaults to z1's shape
    assert [tuple(w.shape) for w in one.weights][2:5] == [(4, 3), (3,), (8, 5)]


def test_heads_compute_in_float32_under_a_mixed_precision_policy():
    """Kills a head (or the layer) that follows the global bfloat16 policy."""
    z1, z2 = _normal(8, 4), _normal(8, 4, seed=1)
    reference = ClassifierPIDHeads(3, joint_hidden_dims=(5,))
    reference.build((None, 4))
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        heads = ClassifierPIDHeads(3, joint_hidden_dims=(5,))
        heads.build((None, 4))
        heads.set_weights(reference.get_weights())
        logits = heads(z1, z2)
    finally:
        keras.config.set_dtype_policy(policy)
    for x, y in zip(logits, reference(z1, z2), strict=True):
        assert keras.backend.standardize_dtype(x.dtype) == "float32"
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y), rtol=1e-6, atol=1e-6
        )
