"""Losses: checks that kill the mutants the other loss tests let live.

Each test names the mutants (docs/testing.md) it kills. References are
closed forms (the Gaussian information of clipped or epsilon-shrunk
correlations) computed in NumPy, and the losses' own float32 results.
"""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from keras_pid_ssl.losses.pseudo_label_pid import STATE_NAMES


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_diagonal_pid_loss_passes_its_delta_to_the_estimator():
    """Kills PIDLoss.pid_terms calling per_dimension_pid without `delta`
    (the default 1e-4 would give I1 = 4.26 nats instead of 0.83). T = Z1, so
    r1 clips at 1 - delta = 0.9: I1 = -1/2 ln(1 - 0.81)."""
    z1, z2 = _normal(256, 2), _normal(256, 2, seed=1)
    loss = kps.losses.PIDLoss(estimator="diagonal", delta=0.1)
    i1 = float(loss.terms(z1, z2, z1)["i1"])
    np.testing.assert_allclose(i1, -0.5 * np.log(1.0 - 0.9**2), rtol=1e-5)


def test_full_pid_loss_passes_its_epsilon_to_the_estimator():
    """Kills PIDLoss.pid_terms calling gaussian_pid without `epsilon`. With
    epsilon = 1 and unit-scale columns the standardisation shrinks every
    correlation by var / (var + 1), about 1/2: closed form for 1-D columns,
    I(T; Z1) = 1/2 ln(S_t / (S_t - c^2 / S_1)) with S = var/(var+eps) + ridge,
    and half the ridge on Z1, which the full estimator reads twice."""
    # Columns of variance ~1e-4: epsilon = 1 shrinks them to the ridge's size.
    z1, z2 = 0.01 * _normal(512, 1), 0.01 * _normal(512, 1, seed=1)
    t = z1 + 0.005 * _normal(512, 1, seed=2)
    eps, ridge = 1.0, 1e-4
    loss = kps.losses.PIDLoss(estimator="full", epsilon=eps)
    i1 = float(loss.terms(z1, z2, t)["i1"])

    def standardized(x):
        x = x[:, 0].astype("float64")
        return (x - x.mean()) / np.sqrt(x.var() + eps)

    u1, ut = standardized(z1), standardized(t)
    s_t, s_1 = np.mean(ut * ut) + ridge, np.mean(u1 * u1) + ridge / 2
    c = np.mean(ut * u1)
    expected = 0.5 * np.log(s_t / (s_t - c**2 / s_1))
    np.testing.assert_allclose(i1, expected, rtol=1e-4)
    # And the default epsilon gives a clearly different value.
    default = float(kps.losses.PIDLoss(estimator="full").terms(z1, z2, t)["i1"])
    assert abs(default - expected) > 0.1


def test_gradient_ratio_stays_positive_when_the_base_pulls_nothing():
    """Kills the denominator's floor subtracted (sqrt(base_sq) - 1e-12): with a
    base whose terms are all 0 (no invariance, no decorrelation) the ratio is
    ||d PID / dz|| / 1e-12, huge and positive, not huge and negative."""
    z1, z2 = _normal(64, 4), _normal(64, 4, seed=1)
    t = z1 + z2
    base = kps.losses.BarlowTwinsLoss(lambda_offdiag=0.0)
    loss = kps.losses.PIDLoss(base=base, invariance_weight=0.0, w_syn=1.0)
    ratio = float(loss.gradient_ratio(z1, z2, t))
    assert ratio > 1e6, ratio


@pytest.mark.parametrize(
    "make,uses_target",
    [
        (kps.losses.BarlowTwinsLoss, False),
        (kps.losses.VICRegLoss, False),
        (lambda: kps.losses.PIDLoss(w_joint=0.3, w_red=0.5, estimator="diagonal"), True),
        (lambda: kps.losses.PIDLoss(w_joint=0.3, w_red=0.5, estimator="full"), True),
    ],
    ids=["barlow_twins", "vicreg", "pid_diagonal", "pid_full"],
)
def test_losses_compute_in_float32_whatever_the_floatx(make, uses_target, float64_floatx):
    """The terms are float32, and those of a float32 floatx, under a float64
    floatx: SSLLoss's `dtype="float32"` dropped would turn the PID
    coefficients, hence the PID terms, into float64. The casts of N and D
    in Barlow Twins and VICReg to floatx survive it: the counts are exact
    and the float32 tensors keep their dtype."""
    z1, z2 = _normal(32, 6), _normal(32, 6, seed=1)
    args = (z1, z2, z1 + z2) if uses_target else (z1, z2)
    keras.config.set_floatx("float32")
    expected = {k: _numpy(v) for k, v in make().terms(*args).items()}
    keras.config.set_floatx("float64")
    terms = make().terms(*args)
    for name, value in terms.items():
        assert _numpy(value).dtype == np.float32, name
        np.testing.assert_allclose(_numpy(value), expected[name], rtol=1e-6, err_msg=name)


def test_loss_state_variables_are_float32_scalars_whatever_the_floatx(float64_floatx):
    """The coefficients and the pseudo-label state are float32 scalars under
    a float64 floatx. SSLLoss builds every loss layer in float32, so the
    add_weight calls' own `dtype="float32"` is redundant (equivalent mutants)."""
    pid = kps.losses.PIDLoss(w_joint=0.25)
    for name, variable in pid.coefficients.items():
        assert variable.dtype == "float32", name
        assert tuple(variable.shape) == ()
    np.testing.assert_allclose(_numpy(pid.coefficients["w_joint"]), 0.25)
    pseudo = kps.losses.PseudoLabelPIDLoss(num_clusters=3, joint_hidden_dims=(4,))
    for name, variable in pseudo.state.items():
        assert variable.dtype == "float32", name
        assert tuple(variable.shape) == ()


def test_pseudo_label_loss_names_its_heads_and_state():
    """Kills the heads' name ("pseudo_label_heads") and the state variables'
    names (STATE_NAMES) dropped or changed: they are the variables' paths in
    checkpoints and in `loss.weights`."""
    loss = kps.losses.PseudoLabelPIDLoss(num_clusters=3, joint_hidden_dims=(4,))
    assert loss.heads.name == "pseudo_label_heads"
    assert [v.name for v in loss.state.values()] == list(STATE_NAMES)
    loss.build((None, 5))
    paths = {v.path for v in loss.heads.weights}
    for layer in ("head1", "head2", "joint_hidden0", "joint_head"):
        assert any(p.endswith(f"pseudo_label_heads/{layer}/kernel") for p in paths), paths


def test_pseudo_labels_reach_the_heads_as_int32():
    """Kills prepare_target casting the labels to floatx instead of int32."""
    loss = kps.losses.PseudoLabelPIDLoss(num_clusters=3, joint_hidden_dims=(4,))
    labels = loss.prepare_target(np.array([0, 2, 1, 2], "int64"))
    assert _numpy(labels).dtype == np.int32
    np.testing.assert_array_equal(_numpy(labels), [0, 2, 1, 2])
