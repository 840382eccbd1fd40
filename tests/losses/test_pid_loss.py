"""PIDLoss: reduces to its base, matches the SPEC formula, stays finite."""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from keras_pid_ssl.utils.autodiff import gradient


def numpy_per_dim(z1, z2, t, eps=1e-5, delta=1e-4):
    """Independent NumPy version of SPEC section 2 (per dimension)."""
    std = lambda z: (z - z.mean(0)) / np.sqrt(z.var(0) + eps)  # noqa: E731
    u1, u2, ut = std(z1), std(z2), std(t)
    b = 1 - delta
    r1 = np.clip((u1 * ut).mean(0), -b, b)
    r2 = np.clip((u2 * ut).mean(0), -b, b)
    r12 = np.clip((u1 * u2).mean(0), -b, b)
    # Clipped to [max(r1^2, r2^2), (1 - delta)^2] (gaussian_pid.per_dimension_pid).
    joint = (r1**2 + r2**2 - 2 * r1 * r2 * r12) / (1 - r12**2)
    joint = np.maximum(np.minimum(joint, b**2), np.maximum(r1**2, r2**2))
    i1, i2, i12 = (-0.5 * np.log(1 - x) for x in (r1**2, r2**2, joint))
    return r1**2, r2**2, joint, i1, i2, i12


def _embeddings(n=64, d=8, seed=0):
    rng = np.random.default_rng(seed)
    a, b, c, e = rng.normal(size=(4, n, d))
    t = a + b + 0.3 * c
    return (a + 0.5 * e).astype("float32"), (b + 0.2 * a).astype("float32"), t.astype("float32")


@pytest.mark.parametrize("base", ["barlow_twins", "vicreg"])
def test_zero_pid_weights_equal_the_base_loss(base):
    z1, z2, t = _embeddings()
    loss = kps.losses.PIDLoss(base=base, invariance_weight=1.0, w_joint=0.0, w_red=0.0, w_syn=0.0)
    reference = {"barlow_twins": kps.losses.BarlowTwinsLoss(), "vicreg": kps.losses.VICRegLoss()}[
        base
    ]
    np.testing.assert_allclose(float(loss(z1, z2, t)), float(reference(z1, z2)), rtol=1e-6)


def test_invariance_weight_rescales_only_the_invariance_term():
    z1, z2, t = _embeddings()
    base = kps.losses.BarlowTwinsLoss().terms(z1, z2)
    loss = kps.losses.PIDLoss(invariance_weight=0.5, w_syn=0.0)
    expected = 0.5 * float(base["invariance"]) + float(base["redundancy_reduction"])
    np.testing.assert_allclose(float(loss(z1, z2, t)), expected, rtol=1e-5)


@pytest.mark.parametrize("units", ["r2", "nats"])
def test_pid_terms_match_the_spec_formula(units):
    z1, z2, t = _embeddings()
    w_joint, w_red, w_syn, inv = 0.3, 0.2, 0.7, 0.5
    loss = kps.losses.PIDLoss(
        base="barlow_twins",
        invariance_weight=inv,
        w_joint=w_joint,
        w_red=w_red,
        w_syn=w_syn,
        units=units,
    )
    terms = {k: float(v) for k, v in loss.terms(z1, z2, t).items()}
    r1, r2, joint, i1, i2, i12 = numpy_per_dim(*(x.astype("float64") for x in (z1, z2, t)))
    if units == "r2":
        expected = (
            w_joint * (1 - joint).sum()
            + w_red * np.minimum(r1, r2).sum()
            - w_syn * (joint - np.maximum(r1, r2)).sum()
        )
    else:
        expected = (
            -w_joint * i12.sum()
            + w_red * np.minimum(i1, i2).sum()
            - w_syn * (i12 - np.maximum(i1, i2)).sum()
        )
    base = kps.losses.BarlowTwinsLoss().terms(z1, z2)
    expected_total = (
        expected + inv * float(base["invariance"]) + float(base["redundancy_reduction"])
    )
    pid_sum = terms["joint_term"] + terms["redundancy_term"] + terms["synergy_term"]
    np.testing.assert_allclose(pid_sum, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(terms["loss"], expected_total, rtol=1e-4)
    np.testing.assert_allclose(
        terms["synergy"], (i12 - np.maximum(i1, i2)).mean(), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(terms["redundancy"], np.minimum(i1, i2).mean(), rtol=1e-4)


def test_mmi_identity_equal_red_and_syn_weights_penalise_single_view_information():
    # SPEC 3: -w_j J + w_r Red - w_s Syn = -(w_j + w_s) J + w_r min + w_s max.
    z1, z2, t = _embeddings()
    w = 0.4
    a = kps.losses.PIDLoss(w_joint=0.0, w_red=w, w_syn=w, units="r2").terms(z1, z2, t)
    r1, r2, joint, *_ = numpy_per_dim(z1, z2, t)
    pid_sum = float(a["joint_term"] + a["redundancy_term"] + a["synergy_term"])
    np.testing.assert_allclose(pid_sum, -w * joint.sum() + w * (r1 + r2).sum(), rtol=1e-4)


def test_coefficients_are_variables_that_change_the_loss():
    z1, z2, t = _embeddings()
    loss = kps.losses.PIDLoss(w_syn=0.0)
    before = float(loss(z1, z2, t))
    loss.set_coefficients(w_syn=2.0)
    after = loss.terms(z1, z2, t)
    assert float(after["w_syn"]) == 2.0
    np.testing.assert_allclose(
        float(after["loss"]), before + float(after["synergy_term"]), rtol=1e-5
    )
    assert float(after["synergy_term"]) < 0
    assert all(not v.trainable for v in loss.weights) and len(loss.weights) == 4


@pytest.mark.parametrize("base", ["barlow_twins", "vicreg"])
@pytest.mark.parametrize("units", ["r2", "nats"])
def test_gradients_finite_for_constant_columns_and_batch_of_two(base, units):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 6)).astype("float32")
    z_const = z.copy()
    z_const[:, :3] = 1.0  # three constant columns
    loss = kps.losses.PIDLoss(base=base, w_joint=0.1, w_red=0.1, w_syn=1.0, units=units)
    for z1, z2, t in [(z_const, z_const, z_const), (z, z, z), (z, -z, 2 * z)]:
        value = float(loss(z1, z2, t))
        grad = np.asarray(gradient(lambda x, z2=z2, t=t: loss(x, z2, t), z1))
        assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_full_estimator_loss_is_finite_and_reports_atoms():
    z1, z2, t = _embeddings(d=4)
    terms = kps.losses.PIDLoss(estimator="full", w_joint=0.1, w_red=0.1).terms(z1, z2, t)
    for name in ("loss", "synergy", "redundancy", "i12"):
        assert np.isfinite(float(terms[name]))


def test_pid_loss_config_round_trip_keeps_base_and_coefficients():
    loss = kps.losses.PIDLoss(
        base=kps.losses.VICRegLoss(invariance_weight=10.0),
        invariance_weight=0.5,
        w_red=0.2,
        units="nats",
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored.base, kps.losses.VICRegLoss)
    assert restored.base.invariance_weight == 10.0
    assert restored.pid_coefficients == loss.pid_coefficients
    z1, z2, t = _embeddings()
    np.testing.assert_allclose(float(restored(z1, z2, t)), float(loss(z1, z2, t)), rtol=1e-6)


def test_pid_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="base"):
        kps.losses.PIDLoss(base="simclr")
    with pytest.raises(ValueError, match="units"):
        kps.losses.PIDLoss(units="bits")
    with pytest.raises(ValueError, match="w_syn"):
        kps.losses.PIDLoss(w_syn=-1.0)
    with pytest.raises(ValueError, match=r"`coefficient`.*'alpha'"):
        kps.losses.PIDLoss().set_coefficients(alpha=1.0)


# Tests added for the mutation run (docs/testing.md).


def numpy_full_pid(z1, z2, t, eps=1e-5, ridge=1e-4):
    """Whole-vector Gaussian MMI atoms (nats), as gaussian_pid(estimator="full") defines them:
    I(T; B) = 1/2 [logdet S_T + logdet S_B - logdet S_TB] of the correlation
    matrices plus ridge * I, each single source read twice, then the clamps
    0 <= I_i <= I12."""

    def std(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)

    def mi(a, b):
        u = np.concatenate([a, b], axis=1)
        s = u.T @ u / len(u) + ridge * np.eye(u.shape[1])
        k = a.shape[1]
        logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
        return 0.5 * (logdet(s[:k, :k]) + logdet(s[k:, k:]) - logdet(s))

    u1, u2, ut = (std(np.asarray(x, np.float64)) for x in (z1, z2, t))
    i1 = max(mi(ut, np.concatenate([u1, u1], axis=1)), 0.0)
    i2 = max(mi(ut, np.concatenate([u2, u2], axis=1)), 0.0)
    i12 = max(mi(ut, np.concatenate([u1, u2], axis=1)), i1, i2)
    return i1, i2, i12


def _synergistic(n=512, d=3, seed=3, scale=1.0):
    """T = A + B: each view sees one part, better together; view 2 noisier."""
    rng = np.random.default_rng(seed)
    a, b, e1, e2 = rng.normal(size=(4, n, d))
    z1, z2 = a + 0.5 * e1, b + 0.9 * e2
    return tuple((scale * x).astype("float32") for x in (z1, z2, a + b))


@pytest.mark.parametrize("units", ["r2", "nats"])
def test_full_estimator_terms_match_a_numpy_reference(units):
    """Kills the full estimator's branch taken for the wrong units, its R^2
    conversion, min/max swapped, and the estimator or epsilon not passed on
    (epsilon = 0.05 on columns of variance ~0.01 moves every atom)."""
    z1, z2, t = _synergistic(scale=0.1)
    eps = 0.05
    i1, i2, i12 = numpy_full_pid(z1, z2, t, eps=eps)
    red, syn = min(i1, i2), i12 - max(i1, i2)
    assert i1 > i2 + 0.1 and syn > 0.1  # not degenerate: min, max and synergy all matter
    if units == "r2":
        r2 = {k: 1 - np.exp(-2 * v) for k, v in (("i1", i1), ("i2", i2), ("i12", i12))}
        joint = 1 - r2["i12"]
        red_u, syn_u = min(r2["i1"], r2["i2"]), r2["i12"] - max(r2["i1"], r2["i2"])
    else:
        joint, red_u, syn_u = -i12, red, syn
    w = {"w_joint": 0.3, "w_red": 0.7, "w_syn": 1.1}
    loss = kps.losses.PIDLoss(estimator="full", units=units, epsilon=eps, **w)
    terms = {k: float(v) for k, v in loss.terms(z1, z2, t).items()}
    expected = {
        "joint_term": w["w_joint"] * joint,
        "redundancy_term": w["w_red"] * red_u,
        "synergy_term": -w["w_syn"] * syn_u,
        "i1": i1,
        "i2": i2,
        "i12": i12,
        "redundancy": red,
        "synergy": syn,
    }
    for name, value in expected.items():
        np.testing.assert_allclose(terms[name], value, rtol=2e-3, atol=2e-5, err_msg=name)


def test_diagonal_estimator_uses_the_losss_delta_and_epsilon():
    """Kills delta or epsilon not passed to per_dimension_pid: correlations near
    0.95 are clipped by delta = 0.2, and epsilon = 0.05 rescales columns of
    variance ~0.01."""
    rng = np.random.default_rng(4)
    a, e1, e2 = rng.normal(size=(3, 256, 4))
    z1, z2, t = ((0.1 * x).astype("float32") for x in (a + 0.3 * e1, a + 0.3 * e2, a))
    delta, eps = 0.2, 0.05
    loss = kps.losses.PIDLoss(w_joint=1.0, w_red=1.0, w_syn=1.0, delta=delta, epsilon=eps)
    terms = loss.terms(z1, z2, t)
    r1, r2, joint, i1, i2, i12 = numpy_per_dim(z1, z2, t, eps=eps, delta=delta)
    expected = (1 - joint).sum() + np.minimum(r1, r2).sum() - (joint - np.maximum(r1, r2)).sum()
    pid = float(terms["joint_term"] + terms["redundancy_term"] + terms["synergy_term"])
    np.testing.assert_allclose(pid, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(terms["i12"]), i12.mean(), rtol=1e-4)


def test_config_round_trip_keeps_estimator_epsilon_and_delta():
    """Kills a field of get_config dropped or replaced."""
    loss = kps.losses.PIDLoss(estimator="full", epsilon=1e-3, delta=0.01, units="nats")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    for name in ("estimator", "epsilon", "delta", "units"):
        assert getattr(restored, name) == getattr(loss, name), name


def test_defaults_are_the_documented_pilot_setting():
    """Kills a changed default coefficient, units, estimator, epsilon or delta,
    and coefficient variables that are not the named, non-trainable float32
    scalars PIDProtocol moves."""
    loss = kps.losses.PIDLoss()
    expected = {"invariance_weight": 1.0, "w_joint": 0.0, "w_red": 0.0, "w_syn": 1.0}
    assert loss.pid_coefficients == expected
    config = loss.get_config()
    assert (config["units"], config["estimator"]) == ("r2", "diagonal")
    assert (config["epsilon"], config["delta"]) == (1e-5, 1e-4)
    assert isinstance(loss.base, kps.losses.BarlowTwinsLoss)
    for name, variable in loss.coefficients.items():
        assert variable.name == name
        assert float(variable) == expected[name]
        assert not variable.trainable and tuple(variable.shape) == ()
        assert keras.backend.standardize_dtype(variable.dtype) == "float32"


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"units": "bits"}, r"`units` must be one of \['nats', 'r2'\]. Received: units='bits'"),
        ({"estimator": "knn"}, r"`estimator` must be one of \['diagonal', 'full'\]"),
        ({"epsilon": 0.0}, r"`epsilon`.*epsilon=0\.0"),
        ({"delta": 1.0}, r"`delta` must be in \(0, 1\)\. Received: delta=1\.0"),
        ({"w_joint": -0.5}, r"`w_joint`.*w_joint=-0\.5"),
    ],
)
def test_every_bad_argument_is_refused_by_name(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        kps.losses.PIDLoss(**kwargs)


def test_embeddings_of_the_wrong_rank_are_refused_naming_the_loss():
    z = np.ones((4, 3, 2), "float32")
    with pytest.raises(ValueError, match=r"^`PIDLoss` expects inputs of shape \(batch_size, dim\)"):
        kps.losses.PIDLoss().terms(z, z, z)


def test_gradient_ratio_is_the_ratio_of_the_gradient_norms():
    """||d(PID terms)/d(z1, z2)|| / ||d(base)/d(z1, z2)||, from the terms'
    gradients taken here: kills a ratio of other norms, of squared norms, a
    wrong floor, and one view's embedding used for both."""
    z1, z2, t = (keras.ops.convert_to_tensor(x) for x in _embeddings())
    loss = kps.losses.PIDLoss(w_joint=0.2, w_red=0.3, w_syn=1.0)
    z = keras.ops.stack([z1, z2])

    def part(names):
        return lambda z: sum(loss.terms(z[0], z[1], t)[name] for name in names)

    pid = np.asarray(gradient(part(loss.pid_term_names), z), np.float64)
    base = np.asarray(gradient(part(loss.base.term_names), z), np.float64)
    # The two views' gradients differ: a ratio of one view's twice would show.
    assert np.abs(pid[0] - pid[1]).max() > 1e-3
    expected = np.sqrt((pid**2).sum()) / np.sqrt((base**2).sum())
    np.testing.assert_allclose(float(loss.gradient_ratio(z1, z2, t)), expected, rtol=1e-4)
