"""SSLModel and PIDModel: checks that kill the mutants the other model tests let live.

Each test names the mutants (docs/testing.md) it kills. References are the
loss evaluated on embeddings computed outside the code under test, counts of
network calls, and sums of the regularisation penalties in NumPy.
"""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch
from conftest import view_dataset
from keras_pid_ssl.information import ATOM_NAMES


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _ssl_model(**kwargs):
    return kps.SSLModel(tiny_encoder(), tiny_projector(), kps.losses.BarlowTwinsLoss(), **kwargs)


def _pid_model(**kwargs):
    loss = kps.losses.PIDLoss(w_joint=0.3, w_red=0.5, w_syn=1.0)
    return kps.PIDModel(tiny_encoder(), tiny_projector(), loss=loss, **kwargs)


def _embed(model, images):
    """The online embedding in training mode (batch statistics), outside the model's code."""
    return model.projector(model.encoder(images, training=True), training=True)


@pytest.mark.parametrize("kind", ["ssl", "pid"])
def test_compute_loss_called_alone_is_the_loss_of_training_mode_embeddings(kind):
    """`compute_loss(x=batch)` embeds the batch itself (no y_pred), in the mode
    it is given: kills x or training not passed on, and a target pass in
    inference mode (the reference target uses batch statistics, as the
    online views do)."""
    v1, v2, t = make_views(n=16, num_views=3)
    model = _ssl_model() if kind == "ssl" else _pid_model(track_gradient_ratio=False)
    z = [_embed(model, v) for v in (v1, v2, t)]
    expected = model.ssl_loss(*(z[:2] if kind == "ssl" else z))
    batch = view_batch(v1, v2) if kind == "ssl" else view_batch(v1, v2, t)
    loss = model.compute_loss(x=batch, training=True)
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-4)


class CountingProjector(keras.layers.Layer):
    """A Dense projector that counts its calls (eager steps only)."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)
        self.calls = 0

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x, training=None):
        self.calls += 1
        return self.dense(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)


@pytest.mark.parametrize("kind,calls", [("ssl", 2), ("pid", 3)])
def test_one_step_runs_the_network_once_per_view(kind, calls):
    """Kills a compute_loss that ignores Keras' y_pred and embeds the views a
    second time (twice the compute and twice the BatchNorm updates)."""
    v1, v2, t = make_views(n=16, num_views=3)
    projector = CountingProjector()
    if kind == "ssl":
        model = kps.SSLModel(tiny_encoder(), projector, kps.losses.BarlowTwinsLoss())
        batch = view_batch(v1, v2)
    else:
        model = kps.PIDModel(tiny_encoder(), projector, track_gradient_ratio=False)
        batch = view_batch(v1, v2, t)
    model.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
    model.train_on_batch(batch)  # builds the optimizer and metrics
    projector.calls = 0
    model.train_on_batch(batch)
    assert projector.calls == calls


def test_evaluation_reports_no_gradient_ratio_and_training_reports_the_losss():
    """Kills `training or track_gradient_ratio` (two extra backward passes in
    every evaluation step) and a ratio computed on other embeddings."""
    v1, v2, t = make_views(n=16, num_views=3)
    model = _pid_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    batch = view_batch(v1, v2, t)
    result = model.evaluate(batch, batch_size=16, verbose=0, return_dict=True)
    assert result["pid_grad_ratio"] == 0.0
    z1, z2, zt = (_embed(model, v) for v in (v1, v2, t))
    expected = float(model.ssl_loss.gradient_ratio(z1, z2, keras.ops.convert_to_tensor(zt)))
    logs = model.train_on_batch(batch, return_dict=True)
    assert expected > 0.01
    np.testing.assert_allclose(logs["pid_grad_ratio"], expected, rtol=1e-3)


class MaskingLoss(kps.losses.SSLLoss):
    """Ignores non-finite entries: finite whatever the embeddings hold."""

    @property
    def term_names(self):
        return ("invariance",)

    def terms(self, z1, z2):
        def finite_square(z):
            z = keras.ops.cast(z, "float32")
            return keras.ops.mean(keras.ops.where(keras.ops.isfinite(z), z, 0.0) ** 2)

        value = finite_square(z1) + finite_square(z2)
        return {"invariance": value, "loss": value}


class MaskingPIDLoss(kps.losses.PIDLoss):
    """MaskingLoss as the base and PID terms that ignore the target: finite always."""

    def pid_terms(self, z1, z2, t):
        zero = keras.ops.zeros(())
        return (zero, zero, zero), {}, {name: zero for name in ATOM_NAMES}


@pytest.mark.parametrize("broken", ["view1", "view2", "target"])
def test_a_non_finite_embedding_makes_the_loss_nan_even_if_the_loss_hides_it(broken):
    """Kills an embedding left out of nan_guard (view 1, view 2 or the target)."""
    v1, v2, t = make_views(n=16, num_views=3)
    images = {"view1": v1, "view2": v2, "target": t}
    if broken == "target":
        model = kps.PIDModel(
            tiny_encoder(),
            tiny_projector(),
            loss=MaskingPIDLoss(base=MaskingLoss()),
            track_gradient_ratio=False,
        )
    else:
        model = kps.SSLModel(tiny_encoder(), tiny_projector(), MaskingLoss())
        del images["target"]
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    clean = model.train_on_batch(images, return_dict=True)["loss"]
    assert np.isfinite(clean)
    images[broken] = images[broken].copy()
    images[broken][0, 0, 0, 0] = np.inf  # BatchNorm spreads it over the batch
    assert np.isnan(model.train_on_batch(images, return_dict=True)["loss"])


def test_regularisation_penalties_are_added_to_the_loss():
    """Kills the penalties dropped or subtracted: loss = SSL loss + sum 0.1 ||W||^2."""
    v1, v2 = make_views(n=16)
    projector = keras.layers.Dense(8, kernel_regularizer=keras.regularizers.L2(0.1))
    model = kps.SSLModel(tiny_encoder(), projector, kps.losses.BarlowTwinsLoss())
    kernels = [_numpy(projector.kernel)]
    penalty = sum(0.1 * float(np.sum(k.astype("float64") ** 2)) for k in kernels)
    z1, z2 = _embed(model, v1), _embed(model, v2)
    expected = float(model.ssl_loss(z1, z2)) + penalty
    loss = model.compute_loss(x=view_batch(v1, v2), training=True)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


def test_the_ema_target_network_is_frozen_and_trains_nothing():
    """Kills a target encoder or projector left trainable."""
    model = _pid_model(target_momentum=0.5)
    online = model.encoder.trainable_weights + model.projector.trainable_weights
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in online}
    targets = model.target_encoder.weights + model.target_projector.weights
    assert targets and not any(w.trainable for w in targets)


class ShapelessEncoder(keras.Model):
    """A subclassed encoder with no input shape: its output shape is unknown."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()

    def call(self, x):
        return self.flatten(x)


def test_an_ema_target_without_a_built_projector_is_refused_with_the_fix():
    with pytest.raises(
        ValueError,
        match=r"An EMA target \(`target_momentum > 0`\) needs a built encoder and "
        r"projector; pass an encoder with a known input shape\.",
    ):
        kps.PIDModel(ShapelessEncoder(), tiny_projector(), target_momentum=0.9)


def test_config_round_trip_keeps_input_range_and_gradient_ratio_tracking():
    """Kills input_range or track_gradient_ratio dropped from get_config."""
    model = _pid_model(track_gradient_ratio=False, input_range=(-1.0, 1.0))
    restored = kps.PIDModel.from_config(model.get_config())
    assert restored.track_gradient_ratio is False
    assert restored.input_range == (-1.0, 1.0)
    ssl = _ssl_model(input_range=None)
    assert kps.SSLModel.from_config(ssl.get_config()).input_range is None


@pytest.mark.parametrize("kind", ["ssl", "pid"])
def test_fit_refuses_a_dataset_of_unknown_batch_size_naming_the_model(kind):
    """Kills the tf.data check skipped, or the message naming another class."""
    views = make_views(n=20, num_views=3)
    model, name = (_ssl_model(), "SSLModel") if kind == "ssl" else (_pid_model(), "PIDModel")
    dataset = view_dataset(*(views[:2] if kind == "ssl" else views), drop_remainder=False)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=rf"^{name}\.fit needs datasets whose batches all have"):
        model.fit(dataset, epochs=1, verbose=0)


def test_pid_model_defaults_and_constructor_refusals():
    """Kills the default loss not made, keyword arguments not passed to
    SSLModel, a target network built for momentum 0, and refusals that lose
    their argument name or their advice."""
    model = kps.PIDModel(tiny_encoder(), tiny_projector(), name="my_pid")
    assert model.name == "my_pid"
    assert isinstance(model.ssl_loss, kps.losses.PIDLoss)
    assert model.ssl_loss.pid_coefficients == kps.losses.PIDLoss().pid_coefficients
    assert model.target_encoder is None and model.target_projector is None
    with pytest.raises(
        ValueError,
        match=r"^`PIDModel` needs a kps\.losses\.PIDLoss \(it uses the target view\)\. "
        r"Received: loss=<BarlowTwinsLoss.*Use SSLModel for a two-view loss\.",
    ):
        kps.PIDModel(tiny_encoder(), tiny_projector(), loss=kps.losses.BarlowTwinsLoss())
    with pytest.raises(ValueError, match=r"`target_momentum` must be in \[0, 1\).*=1\.0"):
        kps.PIDModel(tiny_encoder(), tiny_projector(), target_momentum=1.0)
    labels = kps.losses.PseudoLabelPIDLoss(num_clusters=3, joint_hidden_dims=(8,))
    with pytest.raises(
        ValueError,
        match=r"^A pseudo-label target needs no target network: `target_momentum` must be 0 "
        r"with PseudoLabelPIDLoss\. Received: target_momentum=0\.5",
    ):
        kps.PIDModel(tiny_encoder(), tiny_projector(), loss=labels, target_momentum=0.5)
