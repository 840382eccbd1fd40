"""PIDModel: target view, EMA target, every atom in the history."""

import os

import keras
import numpy as np
import pytest
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector

import keras_pid_ssl as kps
from keras_pid_ssl.information import ATOM_NAMES


def _model(**kwargs):
    loss = kwargs.pop("loss", None) or kps.losses.PIDLoss(w_joint=0.1, w_red=0.1, w_syn=1.0)
    return kps.PIDModel(tiny_encoder(), tiny_projector(), loss=loss, **kwargs)


def _fit(model, views, epochs=2, lr=3e-3):
    model.compile(optimizer=keras.optimizers.Adam(lr))
    dataset = (
        __import__("tensorflow")
        .data.Dataset.from_tensor_slices(views)
        .batch(16, drop_remainder=True)
    )
    return model.fit(dataset, epochs=epochs, verbose=0).history


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
    result = model.evaluate(
        __import__("tensorflow").data.Dataset.from_tensor_slices((v1, v2, t)).batch(16),
        verbose=0,
        return_dict=True,
    )
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
    dataset = __import__("tensorflow").data.Dataset.from_tensor_slices(views).batch(16)
    model.fit(dataset, epochs=1, verbose=0)
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
    with pytest.raises(ValueError, match=r"\(view1, view2, target_view\)"):
        model.compute_loss(v1, v2, model(v1))


def test_constructor_validates_loss_and_momentum():
    with pytest.raises(ValueError, match="PIDLoss"):
        kps.PIDModel(tiny_encoder(), tiny_projector(), loss=kps.losses.BarlowTwinsLoss())
    with pytest.raises(ValueError, match="target_momentum"):
        _model(target_momentum=1.0)
