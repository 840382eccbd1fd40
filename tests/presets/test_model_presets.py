"""Presets: methods by name with the published defaults."""

import pytest

import keras_pid_ssl as kps
from conftest import tiny_encoder


def test_presets_build_the_named_methods_with_published_defaults():
    bt = kps.presets.get("barlow_twins", tiny_encoder(), projector_dims=(16, 8))
    assert isinstance(bt.ssl_loss, kps.losses.BarlowTwinsLoss)
    assert bt.ssl_loss.lambda_offdiag == 5e-3
    vic = kps.presets.get("vicreg", tiny_encoder(), projector_dims=(16, 8))
    assert (
        vic.ssl_loss.invariance_weight,
        vic.ssl_loss.variance_weight,
        vic.ssl_loss.covariance_weight,
    ) == (25, 25, 1)
    pid = kps.presets.get("pid", tiny_encoder(), projector_dims=(16, 8))
    assert isinstance(pid, kps.PIDModel)
    assert pid.ssl_loss.pid_coefficients == {
        "invariance_weight": 1.0,
        "w_joint": 0.0,
        "w_red": 0.0,
        "w_syn": 1.0,
    }
    assert pid.ssl_loss.units == "r2" and pid.target_momentum == 0.0
    assert pid.projector.hidden_dims == (16,) and pid.projector.output_dim == 8


def test_pid_preset_on_vicreg_with_ema_target():
    model = kps.presets.pid_ssl(
        tiny_encoder(), base="vicreg", projector_dims=(8,), target_momentum=0.99
    )
    assert isinstance(model.ssl_loss.base, kps.losses.VICRegLoss)
    assert model.target_encoder is not None


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method"):
        kps.presets.get("simclr", tiny_encoder())
