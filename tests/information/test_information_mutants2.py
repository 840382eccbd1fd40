"""kps.information: checks that kill the mutants test_information_mutants.py lets live.

Each test names the mutants (docs/testing.md) it kills: float32 results under
a float64 floatx (the reference: the same call under float32), argument names
in the refusals of the full estimator, and the heads' layer names.
"""

import inspect
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


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.fixture
def restore_floatx():
    previous = keras.config.floatx()
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


def _z():
    z1, z2 = _normal(64, 3), _normal(64, 3, seed=1)
    return z1, z2, z1 + 0.5 * z2 + 0.3 * _normal(64, 3, seed=2)


def _logits():
    labels = np.array([0, 1, 2, 1, 0, 2, 2, 1], "int64")
    logits = [_normal(8, 3, seed=s) + 2.0 * np.eye(3, dtype="float32")[labels] for s in (3, 4)]
    return labels, logits[0], logits[1], logits[0] + logits[1]


@pytest.mark.parametrize(
    "call",
    [
        lambda: per_dimension_pid(*_z()),
        lambda: gaussian_pid(*_z()),
        lambda: gaussian_pid(*_z(), estimator="full"),
        lambda: {"mi": gaussian_mutual_information(*_z()[::2])},
        lambda: classifier_pid(*_logits()),
    ],
    ids=["per_dimension_pid", "diagonal", "full", "mutual_information", "classifier_pid"],
)
def test_estimators_compute_in_float32_whatever_the_floatx(call, restore_floatx):
    """Kills the casts to float32 replaced by casts to floatx (dtype None):
    the inputs and the clip bound of per_dimension_pid, the batch size of
    _correlation, the identity matrices of _mutual_information, the inputs of
    gaussian_mutual_information and gaussian_pid, the entropy and logits of
    classifier_pid. Under floatx float64 each turns results into float64."""
    keras.config.set_floatx("float32")
    expected = {k: _numpy(v) for k, v in call().items()}
    keras.config.set_floatx("float64")
    out = call()
    assert set(out) == set(expected)
    for name, value in out.items():
        assert _numpy(value).dtype == np.float32, name
        np.testing.assert_allclose(_numpy(value), expected[name], rtol=1e-6, err_msg=name)


def test_full_estimator_names_a_ragged_z1_list():
    """Kills the full estimator's _from_list given another name than "z1"."""
    z = _normal(16, 2)
    with pytest.raises(ValueError, match=r"^`z1` must be a rectangular array"):
        gaussian_pid([[0.0, 1.0], [2.0]], z, z, estimator="full")


def test_full_estimator_names_every_batch_size_it_compares():
    """Kills z1 or z2 left out of the full estimator's batch-size check: the
    message lists the three inputs and their batch sizes."""
    z, t = _normal(8, 2), _normal(6, 2)
    with pytest.raises(ValueError, match=r"Received batch sizes \{'z1': 8, 'z2': 8, 't': 6\}"):
        gaussian_pid(z, z, t, estimator="full")


def test_classifier_heads_name_their_layers():
    """Kills the heads' layer names (head1, head2, joint_hidden{i},
    joint_head) dropped or changed: they are the variables' paths."""
    heads = ClassifierPIDHeads(3, (5, 4))
    heads.build((None, 2), (None, 3))
    names = [heads.head1.name, heads.head2.name] + [layer.name for layer in heads.joint_layers]
    assert names == ["head1", "head2", "joint_hidden0", "joint_hidden1", "joint_head"]
    kernels = [tuple(layer.kernel.shape) for layer in heads.joint_layers]
    assert kernels == [(5, 5), (5, 4), (4, 3)]


def test_small_batch_warning_points_at_the_line_that_called_the_estimator():
    """Kills `stacklevel` raised past the caller (the named mutant
    "gaussian_pid: small-batch warning points past the caller"): called from
    the test function itself, with no lambda in between whose frame would sit
    in this file too. A shape no other test uses (N=7, D=13): the estimator
    warns once per shape."""
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("mutmut's trampolines add frames; tools/named_mutants.py checks this")
    z = _normal(7, 13)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1
        per_dimension_pid(z, z, z)
    (warning,) = [w for w in caught if "N=7 samples for D=13" in str(w.message)]
    assert (warning.filename, warning.lineno) == (__file__, line)
