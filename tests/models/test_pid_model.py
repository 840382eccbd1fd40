"""PIDModel: target view, EMA target, every atom in the history."""

import os

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


def _model(**kwargs):
    loss = kwargs.pop("loss", None) or kps.losses.PIDLoss(w_joint=0.1, w_red=0.1, w_syn=1.0)
    return kps.PIDModel(tiny_encoder(), tiny_projector(), loss=loss, **kwargs)


def _fit(model, views, epochs=2, lr=3e-3):
    model.compile(optimizer=keras.optimizers.Adam(lr))
    return model.fit(view_dataset(*views), epochs=epochs, verbose=0).history


def _numpy(x):
    return np.array(keras.ops.convert_to_numpy(x))


def _weights(layer):
    return [_numpy(w) for w in layer.weights]


@pytest.mark.parametrize("base", ["barlow_twins", "vicreg"])
def test_fit_trains_and_history_contains_every_atom(base):
    views = make_views(n=64, num_views=3)
    model = _model(loss=kps.losses.PIDLoss(base=base, w_joint=0.1, w_red=0.1, w_syn=1.0))
    history = _fit(model, views, epochs=4)
    assert history["loss"][-1] < history["loss"][0]
    for name in ATOM_NAMES + ("joint_term", "redundancy_term", "synergy_term", "pid_grad_ratio"):
        assert name in history and np.all(np.isfinite(history[name])), name
    for i1, i2, i12 in zip(history["i1"], history["i2"], history["i12"]):
        assert i12 >= max(i1, i2) - 1e-6
    assert min(history["pid_grad_ratio"]) > 0


def test_loss_uses_the_stop_gradient_target_of_the_same_network():
    v1, v2, t = make_views(n=16, num_views=3)
    model = _model()
    z1, z2, zt = (keras.ops.convert_to_numpy(model(v, training=False)) for v in (v1, v2, t))
    expected = float(model.ssl_loss(z1, z2, zt))
    model.compile(optimizer="adam")
    result = model.evaluate(view_dataset(v1, v2, t), verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-4)


def test_ema_target_is_updated_inside_the_training_step():
    views = make_views(n=16, num_views=3)
    m = 0.75
    model = _model(target_momentum=m, track_gradient_ratio=False)
    online_values = [np.array(o) for _, o in model._target_pairs()]
    trainable = [o.trainable for _, o in model._target_pairs()]
    for target, _ in model._target_pairs():
        target.assign(np.zeros(target.shape, "float32"))
    # lr=0: the online trainable weights stay fixed, so one step must give
    # target = m * 0 + (1 - m) * online for each of them.
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    model.fit(view_dataset(*views), epochs=1, verbose=0)
    checked = 0
    for (target, _), online, is_trainable in zip(model._target_pairs(), online_values, trainable):
        if is_trainable:
            np.testing.assert_allclose(np.array(target), (1 - m) * online, rtol=1e-5, atol=1e-7)
            checked += 1
    assert checked > 0
    assert all(not w.trainable for w in model.target_encoder.weights)


def test_ema_model_round_trips_with_target_weights(tmp_path):
    views = make_views(n=32, num_views=3)
    model = _model(target_momentum=0.9)
    _fit(model, views, epochs=1)
    path = os.path.join(tmp_path, "pid.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert restored.target_momentum == 0.9
    for a, b in zip(model.target_encoder.weights, restored.target_encoder.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    np.testing.assert_array_equal(
        model.predict(views[0], verbose=0), restored.predict(views[0], verbose=0)
    )


def test_two_view_batches_are_rejected_with_a_clear_message():
    v1, v2 = make_views(n=4)
    model = _model()
    with pytest.raises(
        ValueError, match=r"keys \['view1', 'view2', 'target'\].*missing \['target'\]"
    ):
        model(view_batch(v1, v2))


def _one_sgd_step(model, batch, weights):
    """Weights after one SGD(lr=1) step from `weights` on `batch`: w - dL/dw."""
    model.set_weights(weights)
    model.train_on_batch(batch)
    return [_numpy(w) for w in model.trainable_weights]


class ConstantTargetPIDModel(kps.PIDModel):
    """A PIDModel whose target is a fixed array: no graph to the network at all."""

    constant = None

    def target(self, batch, training):
        return keras.ops.convert_to_tensor(self.constant)


def test_gradient_wrt_the_network_equals_that_of_a_constant_target():
    """The target's stop-gradient: the update is that of T held constant."""
    v1, v2, t = make_views(n=16, num_views=3)
    batch = view_batch(v1, v2, t)
    loss = kps.losses.PIDLoss(w_joint=1.0, w_red=1.0, w_syn=1.0)
    model = kps.PIDModel(tiny_encoder(), tiny_projector(), loss=loss, track_gradient_ratio=False)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    start = model.get_weights()
    start_trainable = [_numpy(w) for w in model.trainable_weights]

    def constant_target_step(constant):
        reference = ConstantTargetPIDModel(
            tiny_encoder(),
            tiny_projector(),
            loss=kps.losses.PIDLoss(w_joint=1.0, w_red=1.0, w_syn=1.0),
            track_gradient_ratio=False,
        )
        reference.constant = constant
        reference.compile(optimizer=keras.optimizers.SGD(1.0))
        return _one_sgd_step(reference, batch, start)

    # The target embedding the model computes in a training step (batch statistics).
    constant = _numpy(model.target(batch, training=True))
    updated = _one_sgd_step(model, batch, start)
    expected = constant_target_step(constant)
    moved = 0
    for a, b, w0 in zip(updated, expected, start_trainable, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        moved += int(np.abs(a - w0).max() > 0)
    assert moved > 0
    # And the target does matter: another constant target gives another update.
    other = constant_target_step(constant[::-1].copy())
    assert max(np.abs(a - b).max() for a, b in zip(other, expected, strict=True)) > 1e-5


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_the_target_pass_leaves_no_state_behind(momentum):
    """Two steps that differ only in the target images leave identical statistics."""
    v1, v2, t = make_views(n=16, num_views=3)
    other_t = np.ascontiguousarray(t[:, ::-1])
    model = _model(target_momentum=momentum, track_gradient_ratio=False)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    start = model.get_weights()
    online = model.encoder.non_trainable_weights + model.projector.non_trainable_weights
    assert online, "the tiny encoder must hold BatchNorm statistics for this test"
    results = []
    for target in (t, other_t):
        model.set_weights(start)
        model.train_on_batch(view_batch(v1, v2, target))
        results.append([_numpy(w) for w in model.non_trainable_weights])
    # (The trainable weights differ: the target changes the loss.)
    for a, b, w in zip(results[0], results[1], model.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=w.path)
    # The online views did update the moving statistics (the test can fail).
    before = {w.path: v for w, v in zip(model.weights, start, strict=True)}
    assert any(np.abs(_numpy(w) - before[w.path]).max() > 1e-6 for w in online)
    if momentum:
        # The EMA target's statistics are the EMA of the online ones, nothing else.
        for target, source in model._target_pairs():
            if not target.trainable and not source.trainable:
                np.testing.assert_allclose(
                    _numpy(target),
                    momentum * before[target.path] + (1 - momentum) * _numpy(source),
                    rtol=1e-5,
                    atol=1e-6,
                )


def test_pid_grad_ratio_is_zero_without_pid_terms_and_linear_in_their_weight():
    v1, v2, t = make_views(n=32, num_views=3)
    rng = np.random.default_rng(0)
    z1, z2, zt = rng.normal(size=(3, 32, 8)).astype("float32")
    ratios = []
    for w_syn in (0.0, 1.0, 3.0):
        loss = kps.losses.PIDLoss(w_syn=w_syn)
        ratios.append(float(loss.gradient_ratio(z1, z2, zt)))
    assert ratios[0] == 0.0
    np.testing.assert_allclose(ratios[2], 3.0 * ratios[1], rtol=1e-4)
    # One training step reports the loss's ratio on the step's embeddings.
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    batch = view_batch(v1, v2, t)
    emb = model(batch, training=True)
    expected = float(
        model.ssl_loss.gradient_ratio(emb["view1"], emb["view2"], model.target(batch, True))
    )
    logs = model.train_on_batch(batch, return_dict=True)
    np.testing.assert_allclose(logs["pid_grad_ratio"], expected, rtol=1e-3)
