"""SSLModel and PIDModel: checks that kill the mutants test_model_mutants.py lets live.

Each test names the mutants (docs/testing.md) it kills. References are the
loss on embeddings computed outside the code under test, sums of the
regularisation penalties in NumPy, and the online network the EMA target is
copied from.
"""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _pid_model(encoder=None, projector=None, **kwargs):
    loss = kps.losses.PIDLoss(w_joint=0.3, w_red=0.5, w_syn=1.0)
    encoder = tiny_encoder() if encoder is None else encoder
    projector = tiny_projector() if projector is None else projector
    return kps.PIDModel(encoder, projector, loss=loss, **kwargs)


def _embed(model, images):
    """The online embedding in training mode (batch statistics), outside the model's code."""
    return model.projector(model.encoder(images, training=True), training=True)


def test_ema_target_layers_are_named_after_the_online_ones():
    """Kills the target encoder's or projector's name dropped (None): their
    variables' paths must not collide with or impersonate the online ones."""
    model = _pid_model(target_momentum=0.9)
    assert model.target_encoder.name == f"target_{model.encoder.name}"
    assert model.target_projector.name == f"target_{model.projector.name}"


def _dropout_encoder(rate):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dropout(rate, seed=1),
            keras.layers.Dense(6),
        ]
    )


@pytest.mark.parametrize("where", ["encoder", "projector"])
def test_ema_target_pass_runs_in_the_mode_it_is_given(where):
    """Kills `training` not passed to the target encoder or projector (None:
    inference mode). With a Dropout layer in one of them, the training-mode
    target differs from the inference-mode one, which equals the online
    network (the target starts as its copy) in inference mode."""
    encoder = _dropout_encoder(0.5 if where == "encoder" else 0.0)
    projector = keras.Sequential(
        [keras.layers.Dropout(0.5 if where == "projector" else 0.0, seed=2), keras.layers.Dense(4)]
    )
    model = _pid_model(encoder, projector, target_momentum=0.9, track_gradient_ratio=False)
    v1, v2, t = make_views(n=8, num_views=3)
    batch = view_batch(v1, v2, t)
    online = _numpy(model.projector(model.encoder(t, training=False), training=False))
    np.testing.assert_allclose(_numpy(model.target(batch, training=False)), online, rtol=1e-5)
    trained = _numpy(model.target(batch, training=True))
    assert np.abs(trained - online).max() > 1e-3


def test_pid_model_adds_regularisation_penalties_to_the_loss():
    """Kills PIDModel.compute_loss subtracting the penalties:
    loss = PID loss + sum 0.1 ||W||^2."""
    v1, v2, t = make_views(n=16, num_views=3)
    projector = keras.layers.Dense(8, kernel_regularizer=keras.regularizers.L2(0.1))
    model = _pid_model(projector=projector, track_gradient_ratio=False)
    penalty = 0.1 * float(np.sum(_numpy(projector.kernel).astype("float64") ** 2))
    z = [_embed(model, v) for v in (v1, v2, t)]
    expected = float(model.ssl_loss(*z)) + penalty
    loss = model.compute_loss(x=view_batch(v1, v2, t), training=True)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


@pytest.mark.parametrize("kind", ["ssl", "pid"])
def test_compute_loss_defaults_to_training_mode_as_keras_does(kind):
    """Kills compute_loss's default `training=True` turned False (Keras's
    Model.compute_loss defaults to True): the BatchNorm layers would use
    their moving statistics."""
    v1, v2, t = make_views(n=16, num_views=3)
    if kind == "ssl":
        model = kps.SSLModel(tiny_encoder(), tiny_projector(), kps.losses.BarlowTwinsLoss())
        batch, z = view_batch(v1, v2), [_embed(model, v) for v in (v1, v2)]
    else:
        model = _pid_model(track_gradient_ratio=False)
        batch, z = view_batch(v1, v2, t), [_embed(model, v) for v in (v1, v2, t)]
    expected = float(model.ssl_loss(*z))
    np.testing.assert_allclose(float(model.compute_loss(x=batch)), expected, rtol=1e-4)
    assert abs(float(model.compute_loss(x=batch, training=False)) - expected) > 1e-3


def test_config_round_trip_keeps_gradient_ratio_tracking_on():
    """Kills get_config writing track_gradient_ratio=None (restored as False)."""
    model = _pid_model(track_gradient_ratio=True)
    assert model.get_config()["track_gradient_ratio"] is True
    assert kps.PIDModel.from_config(model.get_config()).track_gradient_ratio is True


def test_wrong_channel_count_is_refused_naming_the_model_and_the_fix():
    """Kills the message naming NoneType instead of the model, or losing its advice."""
    model = kps.SSLModel(tiny_encoder(channels=1), tiny_projector(), kps.losses.BarlowTwinsLoss())
    v1, v2 = make_views(n=4, channels=3)
    with pytest.raises(
        ValueError,
        match=r"^`SSLModel`'s encoder takes images with 1 channel\(s\) .*Convert them with "
        r"kps\.data\.convert_channels, or build the encoder for this input\.$",
    ):
        model.check_batch(view_batch(v1, v2))
