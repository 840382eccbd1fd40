"""Gaussian PID estimators against closed forms on synthetic Gaussian data."""

import numpy as np
import pytest

from keras_pid_ssl.information import gaussian_mutual_information
from keras_pid_ssl.information import gaussian_pid
from keras_pid_ssl.utils.autodiff import gradient

N, D = 20000, 3


def mi(rho_sq):
    """I = -1/2 ln(1 - rho^2) for a Gaussian pair with squared correlation rho^2."""
    return -0.5 * np.log(1.0 - rho_sq)


def sources(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4, N, D))


def pure_redundancy():
    a, n, _, _ = sources()
    t = a
    z = a + 0.5 * n  # Z1 = Z2 = T + n, the same noise in both
    i = mi(1 / 1.25)
    expected = dict(i1=i, i2=i, i12=i, redundancy=i, unique1=0, unique2=0, synergy=0)
    return (z, z.copy(), t), expected


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
    return (z1, z2, t), expected


def independent():
    a, b, c, _ = sources(2)
    return (a, b, c), {
        k: 0.0 for k in ("i1", "i2", "i12", "redundancy", "unique1", "unique2", "synergy")
    }


def one_unique_source():
    a, b, n, _ = sources(3)
    t, z1, z2 = a + 0.5 * n, a, b
    i = mi(1 / 1.25)
    expected = dict(i1=i, i2=0, i12=i, redundancy=0, unique1=i, unique2=0, synergy=0)
    return (z1, z2, t), expected


CASES = {
    "pure_redundancy": pure_redundancy,
    "pure_synergy": pure_synergy,
    "independent": independent,
    "one_unique_source": one_unique_source,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_diagonal_estimator_matches_closed_form(case):
    (z1, z2, t), expected = CASES[case]()
    atoms = gaussian_pid(*(x.astype("float32") for x in (z1, z2, t)))
    for name, value in expected.items():
        np.testing.assert_allclose(float(atoms[name]), value, atol=0.02, err_msg=name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_full_estimator_matches_closed_form(case):
    # Independent dimensions: multivariate informations add up over the D dims.
    (z1, z2, t), expected = CASES[case]()
    atoms = gaussian_pid(*(x.astype("float32") for x in (z1, z2, t)), estimator="full")
    for name, value in expected.items():
        np.testing.assert_allclose(float(atoms[name]), D * value, atol=0.05, err_msg=name)


@pytest.mark.parametrize("estimator", ["diagonal", "full"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_pid_atoms_sum_to_joint_information(case, estimator):
    (z1, z2, t), _ = CASES[case]()
    atoms = {
        k: float(v)
        for k, v in gaussian_pid(z1[:512], z2[:512], t[:512], estimator=estimator).items()
    }
    total = atoms["redundancy"] + atoms["unique1"] + atoms["unique2"] + atoms["synergy"]
    np.testing.assert_allclose(total, atoms["i12"], atol=1e-5)
    np.testing.assert_allclose(atoms["redundancy"] + atoms["unique1"], atoms["i1"], atol=1e-5)
    np.testing.assert_allclose(atoms["redundancy"] + atoms["unique2"], atoms["i2"], atol=1e-5)


def test_mutual_information_matches_population_formula():
    rng = np.random.default_rng(5)
    cov = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.2], [0.3, 0.2, 1.0]])
    x = rng.multivariate_normal(np.zeros(3), cov, size=N).astype("float32")
    a, b = x[:, :1], x[:, 1:]
    expected = 0.5 * (
        np.linalg.slogdet(cov[:1, :1])[1]
        + np.linalg.slogdet(cov[1:, 1:])[1]
        - np.linalg.slogdet(cov)[1]
    )
    np.testing.assert_allclose(float(gaussian_mutual_information(a, b)), expected, atol=0.01)


@pytest.mark.parametrize("estimator", ["diagonal", "full"])
def test_degenerate_inputs_give_finite_atoms_and_gradients(estimator):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(8, 4)).astype("float32")
    constant = np.ones((8, 4), "float32")
    inputs = {
        "constant": (constant, constant, constant),
        "identical": (z, z, z),
        "perfectly_correlated": (z, 2 * z + 1, -z),
        "batch_of_two": (z[:2], z[2:4], z[4:6]),
    }
    for name, (z1, z2, t) in inputs.items():
        atoms = gaussian_pid(z1, z2, t, estimator=estimator)
        for atom, value in atoms.items():
            assert np.isfinite(float(value)), (name, atom)

        def synergy_of(x, z2=z2, t=t):
            return gaussian_pid(x, z2, t, estimator=estimator)["synergy"]

        grad = np.asarray(gradient(synergy_of, np.asarray(z1)))
        assert np.all(np.isfinite(grad)), name


def test_gaussian_pid_rejects_bad_arguments():
    z = np.zeros((8, 4), "float32")
    with pytest.raises(ValueError, match="estimator"):
        gaussian_pid(z, z, z, estimator="kde")
    with pytest.raises(ValueError, match="same shape"):
        gaussian_pid(z, z[:, :2], z)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        gaussian_pid(z[:1], z[:1], z[:1])
