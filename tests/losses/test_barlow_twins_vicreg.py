"""Barlow Twins and VICReg against independent NumPy implementations."""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps


def numpy_barlow_twins(z1, z2, lambd, inv_weight=1.0, scale=1.0, eps=1e-5):
    # Official code: BatchNorm1d(affine=False) (biased var), c = bn(z1).T @ bn(z2) / N.
    def bn(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)

    c = bn(z1).T @ bn(z2) / z1.shape[0]
    on = ((np.diag(c) - 1) ** 2).sum()
    off = (c**2).sum() - (np.diag(c) ** 2).sum()
    return scale * (inv_weight * on + lambd * off), scale * inv_weight * on, scale * lambd * off


def numpy_vicreg(x, y, sim=25.0, std=25.0, cov=1.0, eps=1e-4, gamma=1.0):
    # Official code (facebookresearch/vicreg main_vicreg.py, VICReg.forward).
    n, d = x.shape
    repr_loss = ((x - y) ** 2).mean()
    x = x - x.mean(0)
    y = y - y.mean(0)
    std_x = np.sqrt(x.var(0, ddof=1) + eps)
    std_y = np.sqrt(y.var(0, ddof=1) + eps)
    std_loss = np.maximum(0, gamma - std_x).mean() / 2 + np.maximum(0, gamma - std_y).mean() / 2
    cov_x = x.T @ x / (n - 1)
    cov_y = y.T @ y / (n - 1)
    off = lambda m: m[~np.eye(d, dtype=bool)]  # noqa: E731
    cov_loss = (off(cov_x) ** 2).sum() / d + (off(cov_y) ** 2).sum() / d
    return (
        sim * repr_loss + std * std_loss + cov * cov_loss,
        sim * repr_loss,
        std * std_loss,
        cov * cov_loss,
    )


def _pair(n=32, d=16, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(n, d)) * scale
    z2 = 0.7 * z1 + 0.5 * rng.normal(size=(n, d)) * scale
    return z1.astype("float32"), z2.astype("float32")


@pytest.mark.parametrize("lambd,inv,scale", [(5e-3, 1.0, 1.0), (0.02, 0.5, 0.024)])
def test_barlow_twins_matches_numpy_reference(lambd, inv, scale):
    z1, z2 = _pair()
    loss = kps.losses.BarlowTwinsLoss(lambda_offdiag=lambd, invariance_weight=inv, scale=scale)
    terms = {k: float(v) for k, v in loss.terms(z1, z2).items()}
    total, on, off = numpy_barlow_twins(
        z1.astype("float64"), z2.astype("float64"), lambd, inv, scale
    )
    np.testing.assert_allclose(terms["loss"], total, rtol=1e-4)
    np.testing.assert_allclose(terms["invariance"], on, rtol=1e-4)
    np.testing.assert_allclose(terms["redundancy_reduction"], off, rtol=1e-4)
    np.testing.assert_allclose(float(loss(z1, z2)), total, rtol=1e-4)


def test_vicreg_matches_numpy_reference():
    z1, z2 = _pair(scale=0.6)  # std below 1: the variance hinge is active
    loss = kps.losses.VICRegLoss()
    terms = {k: float(v) for k, v in loss.terms(z1, z2).items()}
    total, inv, var, cov = numpy_vicreg(z1.astype("float64"), z2.astype("float64"))
    np.testing.assert_allclose(terms["loss"], total, rtol=1e-4)
    np.testing.assert_allclose(terms["invariance"], inv, rtol=1e-4)
    np.testing.assert_allclose(terms["variance"], var, rtol=1e-4)
    np.testing.assert_allclose(terms["covariance"], cov, rtol=1e-4)
    assert var > 0


def test_barlow_twins_is_minimal_for_identical_decorrelated_views():
    rng = np.random.default_rng(0)
    # Orthogonal columns: the cross-correlation of a view with itself is I.
    q, _ = np.linalg.qr(rng.normal(size=(64, 8)))
    z = (q - q.mean(0)).astype("float32")
    assert float(kps.losses.BarlowTwinsLoss()(z, z)) < 1e-2


@pytest.mark.parametrize("loss_cls", [kps.losses.BarlowTwinsLoss, kps.losses.VICRegLoss])
def test_loss_is_float32_under_mixed_precision_inputs(loss_cls):
    z1, z2 = _pair()
    value = loss_cls()(z1.astype("float16"), z2.astype("float16"))
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    np.testing.assert_allclose(float(value), float(loss_cls()(z1, z2)), rtol=5e-3)


@pytest.mark.parametrize("loss_cls", [kps.losses.BarlowTwinsLoss, kps.losses.VICRegLoss])
def test_loss_config_round_trip(loss_cls):
    loss = loss_cls(invariance_weight=3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is loss_cls
    assert restored.get_config() == loss.get_config()


@pytest.mark.parametrize("loss_cls", [kps.losses.BarlowTwinsLoss, kps.losses.VICRegLoss])
def test_loss_rejects_bad_embeddings(loss_cls):
    z1, z2 = _pair()
    with pytest.raises(ValueError, match="same shape"):
        loss_cls()(z1, z2[:, :8])
    with pytest.raises(ValueError, match="batch_size >= 2"):
        loss_cls()(z1[:1], z2[:1])
    with pytest.raises(ValueError, match=r"\(batch_size, dim\)"):
        loss_cls()(z1[None], z2[None])


def test_loss_rejects_negative_weights():
    with pytest.raises(ValueError, match="lambda_offdiag"):
        kps.losses.BarlowTwinsLoss(lambda_offdiag=-1.0)
    with pytest.raises(ValueError, match="variance_weight"):
        kps.losses.VICRegLoss(variance_weight=-2)


def test_non_numeric_embeddings_are_named():
    z = np.ones((8, 4), bool)
    for loss in (kps.losses.BarlowTwinsLoss(), kps.losses.VICRegLoss()):
        with pytest.raises(ValueError, match="expects numeric inputs; input 1 has dtype bool"):
            loss.terms(z, z)


# Tests added for the mutation run (docs/testing.md): each names what it kills.


def test_barlow_twins_defaults_are_the_papers_coefficients():
    """Kills a changed default lambda (e.g. the official code's 0.0051), scale,
    invariance weight or epsilon: the default loss equals the NumPy reference
    with lambda = 5e-3, weights 1 and epsilon 1e-5, on columns whose variance
    (1e-4) makes epsilon matter."""
    z1, z2 = _pair(scale=0.01)
    terms = {k: float(v) for k, v in kps.losses.BarlowTwinsLoss().terms(z1, z2).items()}
    total, on, off = numpy_barlow_twins(z1.astype("float64"), z2.astype("float64"), 5e-3)
    np.testing.assert_allclose(terms["invariance"], on, rtol=1e-4)
    np.testing.assert_allclose(terms["redundancy_reduction"], off, rtol=1e-4)
    np.testing.assert_allclose(terms["loss"], total, rtol=1e-4)
    # The off-diagonal term is large enough for a 2% change of lambda to show.
    assert off > 1e-2 * total


def test_barlow_twins_terms_are_linear_in_their_own_weight_only():
    """Kills a weight applied to the wrong term or not at all."""
    z1, z2 = _pair()
    base = {k: float(v) for k, v in kps.losses.BarlowTwinsLoss().terms(z1, z2).items()}
    for kwargs, scaled, fixed in [
        ({"lambda_offdiag": 2 * 5e-3}, "redundancy_reduction", "invariance"),
        ({"invariance_weight": 3.0}, "invariance", "redundancy_reduction"),
    ]:
        terms = kps.losses.BarlowTwinsLoss(**kwargs).terms(z1, z2)
        factor = 2.0 if "lambda_offdiag" in kwargs else 3.0
        np.testing.assert_allclose(float(terms[scaled]), factor * base[scaled], rtol=1e-5)
        np.testing.assert_allclose(float(terms[fixed]), base[fixed], rtol=1e-6)


def test_vicreg_defaults_are_the_papers_coefficients():
    """Kills a changed default (25, 25, 1, epsilon 1e-4, gamma 1): columns of
    standard deviation 0.01 make epsilon and gamma matter."""
    z1, z2 = _pair(scale=0.01)
    terms = {k: float(v) for k, v in kps.losses.VICRegLoss().terms(z1, z2).items()}
    total, inv, var, cov = numpy_vicreg(z1.astype("float64"), z2.astype("float64"))
    np.testing.assert_allclose(terms["invariance"], inv, rtol=1e-4)
    np.testing.assert_allclose(terms["variance"], var, rtol=1e-4)
    np.testing.assert_allclose(terms["covariance"], cov, rtol=1e-3, atol=1e-12)
    np.testing.assert_allclose(terms["loss"], total, rtol=1e-4)


@pytest.mark.parametrize(
    "weights",
    [
        {"invariance_weight": 2.0},
        {"variance_weight": 3.0},
        {"covariance_weight": 5.0},
        {"gamma": 2.0},
        {"epsilon": 0.5},
    ],
)
def test_vicreg_every_coefficient_reaches_its_term(weights):
    """Kills a coefficient that is stored but not used, or used in another term."""
    z1, z2 = _pair(scale=0.6)
    names = {
        "invariance_weight": "sim",
        "variance_weight": "std",
        "covariance_weight": "cov",
        "epsilon": "eps",
        "gamma": "gamma",
    }
    reference = numpy_vicreg(
        z1.astype("float64"), z2.astype("float64"), **{names[k]: v for k, v in weights.items()}
    )
    terms = kps.losses.VICRegLoss(**weights).terms(z1, z2)
    for name, expected in zip(("loss", "invariance", "variance", "covariance"), reference):
        np.testing.assert_allclose(float(terms[name]), expected, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize(
    "loss_cls,config",
    [
        (
            kps.losses.BarlowTwinsLoss,
            {"lambda_offdiag": 0.02, "invariance_weight": 0.5, "scale": 0.024, "epsilon": 1e-3},
        ),
        (
            kps.losses.VICRegLoss,
            {
                "invariance_weight": 10.0,
                "variance_weight": 15.0,
                "covariance_weight": 2.0,
                "epsilon": 1e-3,
                "gamma": 0.5,
            },
        ),
    ],
)
def test_every_argument_survives_the_config_round_trip(loss_cls, config):
    """Kills a key dropped from or mistyped in get_config."""
    loss = loss_cls(**config)
    saved = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(saved)
    for name, value in config.items():
        assert loss.get_config()[name] == value, name
        assert getattr(restored, name) == value, name
    z1, z2 = _pair(scale=0.3)
    np.testing.assert_allclose(float(restored(z1, z2)), float(loss(z1, z2)), rtol=1e-6)


@pytest.mark.parametrize(
    "loss_cls,name,value",
    [
        (kps.losses.BarlowTwinsLoss, "lambda_offdiag", -1.0),
        (kps.losses.BarlowTwinsLoss, "invariance_weight", -1.0),
        (kps.losses.BarlowTwinsLoss, "scale", 0.0),
        (kps.losses.BarlowTwinsLoss, "epsilon", 0.0),
        (kps.losses.VICRegLoss, "invariance_weight", -1.0),
        (kps.losses.VICRegLoss, "variance_weight", -1.0),
        (kps.losses.VICRegLoss, "covariance_weight", -1.0),
        (kps.losses.VICRegLoss, "epsilon", 0.0),
        (kps.losses.VICRegLoss, "gamma", 0.0),
    ],
)
def test_every_bad_coefficient_is_refused_by_name(loss_cls, name, value):
    """Kills a check dropped, given another argument or another name."""
    with pytest.raises(ValueError, match=rf"`{name}`.*{value!r}"):
        loss_cls(**{name: value})
