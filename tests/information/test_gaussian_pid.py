"""Gaussian PID estimators against NumPy references and closed forms.

Every atom of both estimators is checked against (a) a float64 NumPy
re-implementation of SPEC section 2 on random and degenerate data and (b)
population values of synthetic Gaussians with a known covariance.
"""

import math
import warnings

import keras
import numpy as np
import pytest

from conftest import requires_tensorflow
from keras_pid_ssl.information import ATOM_NAMES
from keras_pid_ssl.information import gaussian_mutual_information
from keras_pid_ssl.information import gaussian_pid
from keras_pid_ssl.information import mmi_atoms
from keras_pid_ssl.information import per_dimension_pid
from keras_pid_ssl.utils.autodiff import gradient

N, D = 20000, 3
EPSILON, DELTA, RIDGE = 1e-5, 1e-4, 1e-4
# The largest information the diagonal estimator can report: R^2 = (1 - delta)^2.
CEILING = -0.5 * math.log(DELTA * (2.0 - DELTA))
# float32 rounds 1 - delta, which moves the ceiling by ~1e-4 nats.
CEILING_RTOL = 5e-5


def to_numpy(atoms):
    return {k: keras.ops.convert_to_numpy(v).astype(np.float64) for k, v in atoms.items()}


# ----------------------------------------------------------------------------
# Independent NumPy references (float64).


def np_standardize(x, epsilon=EPSILON):
    centered = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    return centered / np.sqrt((centered**2).mean(axis=0) + epsilon)


def np_atoms(i1, i2, i12):
    red = np.minimum(i1, i2)
    return dict(
        i1=i1,
        i2=i2,
        i12=i12,
        redundancy=red,
        unique1=i1 - red,
        unique2=i2 - red,
        synergy=i12 - np.maximum(i1, i2),
    )


def np_per_dimension(z1, z2, t, epsilon=EPSILON, delta=DELTA):
    """SPEC section 2, literally: the ratio form of R2 and its two clips."""
    u1, u2, ut = (np_standardize(x, epsilon) for x in (z1, z2, t))
    bound = 1.0 - delta
    r1 = np.clip((u1 * ut).mean(axis=0), -bound, bound)
    r2 = np.clip((u2 * ut).mean(axis=0), -bound, bound)
    r12 = np.clip((u1 * u2).mean(axis=0), -bound, bound)
    joint = (r1**2 + r2**2 - 2 * r1 * r2 * r12) / (1 - r12**2)
    joint = np.clip(joint, np.maximum(r1**2, r2**2), bound**2)
    info = lambda r_sq: -0.5 * np.log(1.0 - r_sq)  # noqa: E731
    out = dict(r1_sq=r1**2, r2_sq=r2**2, joint_r2=joint)
    out.update(np_atoms(info(r1**2), info(r2**2), info(joint)))
    return out


def np_logdet_mi(s_a, s_b, s_ab):
    return 0.5 * (
        np.linalg.slogdet(s_a)[1] + np.linalg.slogdet(s_b)[1] - np.linalg.slogdet(s_ab)[1]
    )


def np_full(z1, z2, t, epsilon=EPSILON, ridge=RIDGE):
    """The full estimator: ridge on every correlation matrix, and I(T; Z_i) with
    half the ridge on Z_i (what reading Z_i twice amounts to), clamped so that
    0 <= I_i <= I12."""
    u1, u2, ut = (np_standardize(x, epsilon) for x in (z1, z2, t))
    n, dt = ut.shape

    def corr(*blocks, ridges):
        u = np.concatenate(blocks, axis=1)
        diag = np.concatenate([np.full(b.shape[1], r) for b, r in zip(blocks, ridges, strict=True)])
        return u.T @ u / n + np.diag(diag)

    def single(u):
        return np_logdet_mi(
            corr(ut, ridges=[ridge]),
            corr(u, ridges=[ridge / 2]),
            corr(ut, u, ridges=[ridge, ridge / 2]),
        )

    i1, i2 = max(single(u1), 0.0), max(single(u2), 0.0)
    i12 = np_logdet_mi(
        corr(ut, ridges=[ridge]),
        corr(u1, u2, ridges=[ridge, ridge]),
        corr(ut, u1, u2, ridges=[ridge] * 3),
    )
    return np_atoms(i1, i2, max(i12, i1, i2))


# ----------------------------------------------------------------------------
# The per-dimension formulas on random and degenerate columns.


def mixed_columns(n=64, seed=0):
    """Columns that exercise every branch: random covariances, each clip, affine maps."""
    rng = np.random.default_rng(seed)
    cols1, cols2, cols_t = [], [], []
    for _ in range(24):  # random trivariate Gaussians with varied correlations
        # (the noise keeps R2 below ~0.99, where float32 would limit the
        # agreement; the special columns below reach the clips exactly)
        a = rng.normal(size=(3, 3))
        x = rng.normal(size=(n, 3)) @ a + 0.3 * rng.normal(size=(n, 3))
        cols1.append(x[:, 0])
        cols2.append(x[:, 1])
        cols_t.append(x[:, 2])
    x, y, e = rng.normal(size=(3, n))
    special = [
        (x, x, x),  # identical: every r and R2 at its ceiling
        (x + 0.5 * e, x + 0.5 * e, x),  # same noise: r12 at the clip
        (x, y, x),  # Z1 = T: r1 at the clip
        (-x, y, x),  # Z1 = -T: r1 at the negative clip
        (x + 0.3 * e, np.full(n, 2.0), x),  # constant Z2
        (100.0 * x + 5.0, -0.5 * (x + e) + 3.0, x - y + 7.0),  # scales, shifts
        (x + 0.2 * e, x + 2.0 * y, x),  # I1 much larger than I2
        (x, y, x + y + 0.1 * e),  # mostly synergy
    ]
    for c1, c2, ct in special:
        cols1.append(c1)
        cols2.append(c2)
        cols_t.append(ct)
    stack = lambda cols: np.stack(cols, axis=1).astype("float32")  # noqa: E731
    return stack(cols1), stack(cols2), stack(cols_t)


def test_per_dimension_pid_matches_numpy_reference():
    z1, z2, t = mixed_columns()
    got = to_numpy(per_dimension_pid(z1, z2, t))
    expected = np_per_dimension(z1, z2, t)
    assert set(got) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=2e-6, err_msg=name)
    # The data reach both clips and both orders of I1 and I2, so each matters.
    assert np.any(expected["joint_r2"] == (1 - DELTA) ** 2)
    assert np.any(expected["i1"] > expected["i2"] + 0.1)
    assert np.any(expected["i2"] > expected["i1"] + 0.1)


def test_diagonal_gaussian_pid_is_the_mean_over_dimensions_of_the_reference():
    z1, z2, t = mixed_columns(seed=1)
    got = to_numpy(gaussian_pid(z1, z2, t))
    expected = np_per_dimension(z1, z2, t)
    for name in ATOM_NAMES:
        np.testing.assert_allclose(got[name], expected[name].mean(), rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("delta", [1e-3, 0.05])
def test_delta_and_epsilon_reach_the_reference(delta):
    z1, z2, t = mixed_columns(seed=2)
    got = to_numpy(per_dimension_pid(z1, z2, t, epsilon=0.5, delta=delta))
    expected = np_per_dimension(z1, z2, t, epsilon=0.5, delta=delta)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=2e-6, err_msg=name)


def test_clipped_informations_stop_at_the_documented_ceiling():
    # -1/2 ln(delta (2 - delta)) bounds I1, I2 and I12 alike.
    x = np.random.default_rng(3).normal(size=(64, 2)).astype("float32")
    per_dim = to_numpy(per_dimension_pid(x, 2 * x + 1, -x))
    for name in ("i1", "i2", "i12", "redundancy"):
        np.testing.assert_allclose(per_dim[name], CEILING, rtol=CEILING_RTOL, err_msg=name)
    np.testing.assert_array_equal(per_dim["synergy"], 0.0)
    np.testing.assert_allclose(CEILING, 4.2586, atol=1e-4)


def test_mmi_atoms_take_min_for_redundancy_and_max_for_synergy():
    atoms = to_numpy(mmi_atoms(np.float32(0.75), np.float32(0.25), np.float32(2.0)))
    expected = dict(
        i1=0.75, i2=0.25, i12=2.0, redundancy=0.25, unique1=0.5, unique2=0.0, synergy=1.25
    )
    for name, value in expected.items():
        np.testing.assert_allclose(atoms[name], value, err_msg=name)


# ----------------------------------------------------------------------------
# Closed forms on synthetic Gaussians with a known covariance.


def mi(rho_sq):
    """I = -1/2 ln(1 - rho^2) for a Gaussian pair with squared correlation rho^2."""
    return -0.5 * np.log(1.0 - rho_sq)


def sources(seed=0):
    return np.random.default_rng(seed).normal(size=(4, N, D))


def affine(x, scale, shift):
    """Per-column affine maps change no information, only the raw moments."""
    return scale * x + shift


def pure_redundancy():
    a, n, _, _ = sources()
    z = a + 0.5 * n  # Z1 = Z2 = T + n, the same noise in both
    i = mi(1 / 1.25)
    expected = dict(i1=i, i2=i, i12=i, redundancy=i, unique1=0, unique2=0, synergy=0)
    return (affine(z, 3.0, 2.0), affine(z, -0.5, 1.0), affine(a, 2.0, -4.0)), expected


def pure_synergy():
    a, b, n1, n2 = sources(1)
    s = 0.1
    t, z1, z2 = a + b, a + s * n1, b + s * n2
    i_single = mi(1 / (2 * (1 + s**2)))
    i_joint = mi(1 / (1 + s**2))
    expected = dict(
        i1=i_single,
        i2=i_single,
        i12=i_joint,
        redundancy=i_single,
        unique1=0,
        unique2=0,
        synergy=i_joint - i_single,
    )
    return (affine(z1, 2.0, 1.0), affine(z2, 0.7, -3.0), affine(t, 1.5, 5.0)), expected


def independent():
    a, b, c, _ = sources(2)
    return (a, b, c), {k: 0.0 for k in ATOM_NAMES}


def one_unique_source():
    a, b, n, _ = sources(3)
    t, z1, z2 = a + 0.5 * n, a, b
    i = mi(1 / 1.25)
    expected = dict(i1=i, i2=0, i12=i, redundancy=0, unique1=i, unique2=0, synergy=0)
    return (affine(z1, 4.0, 1.0), affine(z2, 0.5, 0.0), affine(t, 1.0, -2.0)), expected


def mixed():
    # T = a + b + c, Z1 = a + b, Z2 = b + 2c: unequal single informations.
    a, b, c, _ = sources(4)
    t, z1, z2 = a + b + c, a + b, b + 2 * c
    # Var T = 3, Cov(T, Z1) = 2, Cov(T, Z2) = 3, Var Z1 = 2, Var Z2 = 5, Cov(Z1, Z2) = 1.
    i1, i2 = mi(4 / (3 * 2)), mi(9 / (3 * 5))
    cov_z = np.array([[2.0, 1.0], [1.0, 5.0]])
    cov_tz = np.array([2.0, 3.0])
    i12 = mi(cov_tz @ np.linalg.solve(cov_z, cov_tz) / 3.0)
    return (z1, z2, t), dict(np_atoms(i1, i2, i12))


CASES = {
    "pure_redundancy": pure_redundancy,
    "pure_synergy": pure_synergy,
    "independent": independent,
    "one_unique_source": one_unique_source,
    "mixed": mixed,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_diagonal_estimator_matches_closed_form(case):
    (z1, z2, t), expected = CASES[case]()
    atoms = to_numpy(gaussian_pid(*(x.astype("float32") for x in (z1, z2, t))))
    for name, value in expected.items():
        np.testing.assert_allclose(atoms[name], value, atol=0.015, err_msg=name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_full_estimator_matches_closed_form(case):
    # Independent dimensions: multivariate informations add up over the D dims.
    # (The ridge lowers I12 of pure_synergy, 1 - R^2 = 0.01, by ~0.015 nats.)
    (z1, z2, t), expected = CASES[case]()
    atoms = to_numpy(gaussian_pid(*(x.astype("float32") for x in (z1, z2, t)), estimator="full"))
    for name, value in expected.items():
        np.testing.assert_allclose(atoms[name], D * value, atol=0.05, err_msg=name)


def test_full_estimator_sees_information_spread_across_dimensions():
    # T_k = a_k + a_{k+1} (cyclic), Z1 = a: the diagonal estimator sees one
    # share per dimension, the full one the whole map (Z1 determines T).
    rng = np.random.default_rng(6)
    a = rng.normal(size=(N, 3))
    t = a + np.roll(a, -1, axis=1) + 0.5 * rng.normal(size=(N, 3))
    z2 = rng.normal(size=(N, 3))
    cov_t = 2 * np.eye(3) + np.roll(np.eye(3), 1, 1) + np.roll(np.eye(3), -1, 1) + 0.25 * np.eye(3)
    i1 = 0.5 * (np.linalg.slogdet(cov_t)[1] - 3 * np.log(0.25))
    atoms = to_numpy(gaussian_pid(*(x.astype("float32") for x in (a, z2, t)), estimator="full"))
    np.testing.assert_allclose(atoms["i1"], i1, atol=0.03)
    np.testing.assert_allclose(atoms["unique1"], i1, atol=0.03)
    np.testing.assert_allclose(atoms["i2"], 0.0, atol=0.01)
    diagonal = to_numpy(gaussian_pid(*(x.astype("float32") for x in (a, z2, t))))
    np.testing.assert_allclose(diagonal["i1"], mi(1 / 2.25), atol=0.01)


@pytest.mark.parametrize("ridge", [RIDGE, 0.05])
def test_full_estimator_matches_numpy_reference_at_small_batch(ridge):
    # N = 40 samples of 4 + 4 + 3 columns; with ridge 0.05 the ridge and the
    # read-twice rule move the atoms by ~1e-2, so the reference must follow them.
    rng = np.random.default_rng(7)
    latent = rng.normal(size=(40, 5))
    x = latent @ rng.normal(size=(5, 11)) + 0.5 * rng.normal(size=(40, 11))
    x = x.astype("float32")
    z1, z2, t = x[:, :4], x[:, 4:8], x[:, 8:]
    got = to_numpy(gaussian_pid(z1, z2, t, estimator="full", ridge=ridge))
    expected = np_full(z1, z2, t, ridge=ridge)
    for name in ATOM_NAMES:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert expected["synergy"] > 0.05 and expected["unique1"] + expected["unique2"] > 0.05


def test_mutual_information_matches_population_formula_and_reference():
    rng = np.random.default_rng(5)
    cov = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.2], [0.3, 0.2, 1.0]])
    x = rng.multivariate_normal(np.zeros(3), cov, size=N).astype("float32")
    a, b = 2.0 * x[:, :1] + 1.0, x[:, 1:]
    expected = np_logdet_mi(cov[:1, :1], cov[1:, 1:], cov)
    np.testing.assert_allclose(float(gaussian_mutual_information(a, b)), expected, atol=0.01)
    # At a small batch, against the sample formula with the same ridge.
    a, b = a[:12], b[:12]
    ua, ub = np_standardize(a), np_standardize(b)
    u = np.concatenate([ua, ub], axis=1)
    corr = u.T @ u / 12
    ridge = 0.01
    sample = np_logdet_mi(
        corr[:1, :1] + ridge * np.eye(1), corr[1:, 1:] + ridge * np.eye(2), corr + ridge * np.eye(3)
    )
    got = float(gaussian_mutual_information(a, b, ridge=ridge))
    np.testing.assert_allclose(got, sample, rtol=1e-4)


# ----------------------------------------------------------------------------
# Identical, rank-deficient and degenerate inputs.


@pytest.mark.parametrize("estimator", ["diagonal", "full"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 30.0])
def test_identical_inputs_give_no_synergy(estimator, scale):
    # T = Z1 = Z2: all redundancy. The clips (diagonal) and the ridge (full)
    # used to report ~0.35 / ~0.14 nats of synergy per dimension here. (The
    # diagonal estimator needs column variances above ~epsilon / delta = 0.1,
    # see per_dimension_pid.)
    z = (scale * np.random.default_rng(8).normal(size=(256, 8))).astype("float32")
    atoms = to_numpy(gaussian_pid(z, z, z, estimator=estimator))
    assert abs(atoms["synergy"]) < 1e-3, atoms
    np.testing.assert_allclose(atoms["redundancy"], atoms["i12"], rtol=1e-6)
    if estimator == "diagonal":
        np.testing.assert_allclose(atoms["i12"], CEILING, rtol=CEILING_RTOL)


def rank_two(rng, n, d):
    return rng.normal(size=(n, 2)) @ rng.normal(size=(2, d))


@pytest.mark.parametrize(
    "inputs",
    ["identical_rank_two", "same_rank_two_sources", "fewer_samples_than_dimensions"],
)
def test_full_estimator_gives_no_synergy_for_rank_deficient_sources(inputs):
    rng = np.random.default_rng(9)
    if inputs == "identical_rank_two":
        z = rank_two(rng, 256, 8)
        z1, z2, t = z, z, z
    elif inputs == "same_rank_two_sources":
        z = rank_two(rng, 256, 8)
        z1, z2, t = z, z, z @ rng.normal(size=(8, 4)) + 0.1 * rng.normal(size=(256, 4))
    else:
        z = rng.normal(size=(8, 16))
        z1, z2, t = z, z, z
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms = to_numpy(gaussian_pid(*(x.astype("float32") for x in (z1, z2, t)), "full"))
    assert abs(atoms["synergy"]) < 1e-3, atoms
    assert atoms["i1"] > 1.0, atoms


def test_useless_second_source_never_gives_negative_synergy():
    # T = Z1, Z2 independent: the raw I12 falls below the read-twice I1 (the
    # ridge), and the clamp restores I12 = I1: synergy 0, all unique to Z1.
    rng = np.random.default_rng(10)
    z1, z2 = rng.normal(size=(2, 256, 4)).astype("float32")
    atoms = to_numpy(gaussian_pid(z1, z2, z1, estimator="full"))
    assert atoms["synergy"] == 0.0
    np.testing.assert_allclose(atoms["i12"], atoms["i1"])
    np.testing.assert_allclose(atoms["unique1"], atoms["i1"] - atoms["i2"], rtol=1e-6)
    assert atoms["i1"] > 10.0


def test_synergy_is_never_negative_on_near_degenerate_columns():
    # Near-collinear views and near-perfect targets: where rounding matters most.
    rng = np.random.default_rng(11)
    x, e1, e2, e3 = rng.normal(size=(4, 128, 256))
    scales = np.logspace(-6, 0, 256)
    z1, z2, t = (np.float32(x + scales * e) for e in (e1, e2, e3))
    per_dim = to_numpy(per_dimension_pid(z1, z2, t))
    assert per_dim["synergy"].min() >= 0.0
    assert np.all(per_dim["joint_r2"] >= np.maximum(per_dim["r1_sq"], per_dim["r2_sq"]))
    np.testing.assert_allclose(
        per_dim["synergy"], np_per_dimension(z1, z2, t)["synergy"], atol=2e-3
    )


@pytest.mark.parametrize("estimator", ["diagonal", "full"])
def test_degenerate_inputs_give_reference_atoms_and_finite_gradients(estimator):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(16, 4)).astype("float32")
    constant = np.ones((16, 4), "float32")
    reference = np_per_dimension if estimator == "diagonal" else np_full
    inputs = {
        "constant": (constant, constant, constant),
        "identical": (z, z, z),
        "perfectly_correlated": (z, 2 * z + 1, -z),
        "constant_target": (z, z[::-1].copy(), constant),
    }
    for name, (z1, z2, t) in inputs.items():
        atoms = to_numpy(gaussian_pid(z1, z2, t, estimator=estimator))
        expected = reference(z1, z2, t)
        for atom in ATOM_NAMES:
            value = expected[atom].mean() if estimator == "diagonal" else expected[atom]
            # float32 Cholesky of the near-singular full matrices: ~1e-3 nats.
            atol = 1e-5 if estimator == "diagonal" else 2e-3
            np.testing.assert_allclose(atoms[atom], value, rtol=1e-4, atol=atol, err_msg=name)

        def synergy_of(x, z2=z2, t=t):
            return gaussian_pid(x, z2, t, estimator=estimator)["synergy"]

        grad = keras.ops.convert_to_numpy(gradient(synergy_of, z1))
        assert np.all(np.isfinite(grad)), name
    # Constant inputs carry no information at all.
    assert all(v == 0.0 for v in to_numpy(gaussian_pid(constant, constant, constant)).values())


# ----------------------------------------------------------------------------
# Gradients against NumPy finite differences.


def numpy_gradient(fn, x, h=1e-6):
    grad = np.zeros_like(x, dtype=np.float64)
    for index in np.ndindex(x.shape):
        up, down = x.astype(np.float64), x.astype(np.float64)
        up[index] += h
        down[index] -= h
        grad[index] = (fn(up) - fn(down)) / (2 * h)
    return grad


def gradient_case(seed, n, d):
    rng = np.random.default_rng(seed)
    a, b, e1, e2, e3 = rng.normal(size=(5, n, d))
    return (a + 0.8 * e1).astype("float32"), (b + 1.5 * e2).astype("float32"), a + b + 0.5 * e3


def test_diagonal_synergy_gradient_matches_finite_differences():
    z1, z2, t = gradient_case(12, n=12, d=2)
    z2_64, t_64 = z2.astype(np.float64), t.astype(np.float64)
    expected = numpy_gradient(lambda x: np_per_dimension(x, z2_64, t_64)["synergy"].mean(), z1)
    got = gradient(lambda x: gaussian_pid(x, z2, t.astype("float32"))["synergy"], z1)
    got = keras.ops.convert_to_numpy(got)
    assert np.abs(expected).max() > 0.01
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())


def test_full_synergy_gradient_matches_finite_differences():
    z1, z2, t = gradient_case(13, n=16, d=2)
    z2_64, t_64 = z2.astype(np.float64), t.astype(np.float64)
    expected = numpy_gradient(lambda x: np_full(x, z2_64, t_64)["synergy"], z1)
    got = gradient(lambda x: gaussian_pid(x, z2, t.astype("float32"), "full")["synergy"], z1)
    got = keras.ops.convert_to_numpy(got)
    assert np.abs(expected).max() > 0.01
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())


# ----------------------------------------------------------------------------
# Sample size: documented bias and warnings.


def test_diagonal_bias_on_independent_inputs_is_as_documented():
    # Plug-in bias: I1, I2 ~ 1/(2N), I12 ~ 1/N, synergy ~ (1 - 2/pi)/(2N) nats per dim
    # (to first order in 1/N: at N = 100 the exact means are ~3% higher).
    n = 100
    z1, z2, t = np.random.default_rng(14).normal(size=(3, n, 4000)).astype("float32")
    atoms = to_numpy(gaussian_pid(z1, z2, t))
    np.testing.assert_allclose(n * (atoms["i1"] + atoms["i2"]) / 2, 0.5, atol=0.04)
    np.testing.assert_allclose(n * atoms["i12"], 1.0, atol=0.1)
    np.testing.assert_allclose(n * atoms["synergy"], (1 - 2 / math.pi) / 2, atol=0.03)


def test_full_bias_on_independent_inputs_is_as_documented():
    # I_i ~ d_T d_Z / (2N), I12 ~ d_T d_Z / N, averaged over seeds.
    n, d = 200, 3
    rng = np.random.default_rng(15)
    totals = np.zeros(2)
    for _ in range(10):
        z1, z2, t = rng.normal(size=(3, n, d)).astype("float32")
        atoms = to_numpy(gaussian_pid(z1, z2, t, estimator="full"))
        totals += [(atoms["i1"] + atoms["i2"]) / 2, atoms["i12"]]
    np.testing.assert_allclose(totals / 10 * n / d**2, [0.5, 1.0], rtol=0.15)


def record_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(*args, **kwargs)
        fn(*args, **kwargs)
    return [str(w.message) for w in caught]


def test_diagonal_estimator_warns_once_per_shape_below_ten_samples():
    # Shapes used by no other test: the warning fires once per shape per process.
    small = np.random.default_rng(16).normal(size=(3, 9, 13)).astype("float32")
    messages = record_warnings(gaussian_pid, *small)
    assert len(messages) == 1
    assert "N=9" in messages[0] and "D=13" in messages[0] and "diagonal" in messages[0]
    enough = np.random.default_rng(16).normal(size=(3, 10, 13)).astype("float32")
    assert record_warnings(gaussian_pid, *enough) == []


def test_full_estimator_warns_once_per_shape_below_twice_the_dimension():
    small = np.random.default_rng(17).normal(size=(3, 13, 7)).astype("float32")
    messages = record_warnings(gaussian_pid, *small, estimator="full")
    assert len(messages) == 1
    assert "N=13" in messages[0] and "D=7" in messages[0] and "full" in messages[0]
    enough = np.random.default_rng(17).normal(size=(3, 14, 7)).astype("float32")
    assert record_warnings(gaussian_pid, *enough, estimator="full") == []


@requires_tensorflow
def test_unknown_batch_size_in_a_compiled_step_neither_warns_nor_fails():
    import tensorflow as tf

    spec = tf.TensorSpec((None, 5), tf.float32)
    z1, z2, t = np.random.default_rng(18).normal(size=(3, 6, 5)).astype("float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = tf.function(lambda a, b, c: gaussian_pid(a, b, c)["synergy"])
        got = float(compiled.get_concrete_function(spec, spec, spec)(z1, z2, t))
    assert caught == []
    np.testing.assert_allclose(got, np_per_dimension(z1, z2, t)["synergy"].mean(), rtol=1e-4)


# ----------------------------------------------------------------------------
# Inputs and arguments.


def test_python_lists_work_like_arrays():
    z1, z2, t = (x[:12, :3] for x in mixed_columns(seed=19))
    for estimator in ("diagonal", "full"):
        from_lists = to_numpy(gaussian_pid(z1.tolist(), z2.tolist(), t.tolist(), estimator))
        from_arrays = to_numpy(gaussian_pid(z1, z2, t, estimator))
        for name in ATOM_NAMES:
            np.testing.assert_allclose(from_lists[name], from_arrays[name], rtol=1e-6)
    np.testing.assert_allclose(
        float(gaussian_mutual_information(z1.tolist(), t.tolist())),
        float(gaussian_mutual_information(z1, t)),
        rtol=1e-6,
    )


def test_ragged_lists_raise_a_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="`z2` must be a rectangular array"):
        gaussian_pid([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="`a` must be a rectangular array"):
        gaussian_mutual_information([[1.0], [2.0, 3.0]], [[1.0], [2.0]])


def test_gaussian_pid_rejects_bad_arguments():
    z = np.zeros((8, 4), "float32")
    with pytest.raises(ValueError, match="estimator"):
        gaussian_pid(z, z, z, estimator="kde")
    with pytest.raises(ValueError, match="same shape"):
        gaussian_pid(z, z[:, :2], z)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        gaussian_pid(z[:1], z[:1], z[:1])
    with pytest.raises(ValueError, match="same batch size"):
        gaussian_pid(z, z, z[:6], estimator="full")
    with pytest.raises(ValueError, match="same batch size"):
        gaussian_mutual_information(z, z[:6])
    with pytest.raises(ValueError, match="delta"):
        gaussian_pid(z, z, z, delta=1.0)
    with pytest.raises(ValueError, match="epsilon"):
        gaussian_pid(z, z, z, epsilon=0.0)
    with pytest.raises(ValueError, match="ridge"):
        gaussian_pid(z, z, z, estimator="full", ridge=0.0)
