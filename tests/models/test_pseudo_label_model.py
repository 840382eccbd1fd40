"""PseudoLabelPIDModel: who trains what, batches, every atom in the history, saving."""

import os

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch
from keras_pid_ssl.information import ATOM_NAMES
from keras_pid_ssl.losses.pseudo_label_pid import PSEUDO_LABEL_DIAGNOSTICS
from keras_pid_ssl.utils.autodiff import gradient

K = 3


def _model(**loss_kwargs):
    loss = kps.losses.PIDLoss(**{"w_syn": 0.0, "units": "nats", **loss_kwargs})
    return kps.models.PseudoLabelPIDModel(
        tiny_encoder(), tiny_projector(), num_clusters=K, loss=loss, joint_hidden_dims=(8,)
    )


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_embedding_gradient_is_base_plus_supervision_only():
    """The heads' own cross-entropy must not reach the backbone; alpha * CE_i must."""
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(2, 16, 8)).astype("float32")
    labels = rng.integers(0, K, size=16).astype("int32")
    model = _model()
    model.set_pseudo_label_state(ready=1.0, label_entropy=np.log(K))
    z = np.stack([z1, z2])
    base = kps.losses.BarlowTwinsLoss()

    def total(z):
        return model.ssl_loss.terms(z[0], z[1], labels)["loss"]

    base_grad = _numpy(gradient(lambda z: base(z[0], z[1]), z))
    # CE_i = mean_n -log softmax(z_i W_i + b_i)[label]: d/dz_i = (p - onehot) W_i^T / N.
    expected_ce = []
    for zi, head in ((z1, model.heads.head1), (z2, model.heads.head2)):
        kernel, bias = _numpy(head.kernel), _numpy(head.bias)
        probs = _softmax(zi @ kernel + bias)
        expected_ce.append((probs - np.eye(K)[labels]) @ kernel.T / 16)
    expected_ce = np.stack(expected_ce)
    for alpha in (0.0, 0.5):
        model.set_pseudo_label_state(supervision_weight=alpha)
        np.testing.assert_allclose(
            _numpy(gradient(total, z)), base_grad + alpha * expected_ce, rtol=1e-4, atol=1e-6
        )


def test_loss_before_the_first_clustering_is_the_base_loss():
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(2, 16, 8)).astype("float32")
    labels = np.zeros(16, "int32")
    model = _model(w_joint=1.0, w_red=1.0, w_syn=1.0)
    model.set_pseudo_label_state(supervision_weight=0.1)  # ready stays 0
    terms = model.ssl_loss.terms(z1, z2, labels)
    expected = float(kps.losses.BarlowTwinsLoss()(z1, z2))
    np.testing.assert_allclose(float(terms["loss"]), expected, rtol=1e-5)
    for name in ATOM_NAMES + ("head_ce1", "supervision_term", "synergy_term"):
        assert float(terms[name]) == 0.0, name


def test_supervision_and_pid_terms_train_the_backbone_but_never_the_heads():
    v1, v2, _ = make_views(n=16, num_views=3)
    model = _model(w_joint=5.0, w_red=5.0, w_syn=5.0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    # Confident heads whose predictions are the labels: every bound is positive,
    # so every PID term has a gradient.
    for layer in [model.heads.head1, model.heads.head2] + model.heads.joint_layers:
        layer.kernel.assign(10.0 * _numpy(layer.kernel))
    z1, z2 = model(v1, training=False), model(v2, training=False)
    labels = _numpy(keras.ops.argmax(model.heads(z1, z2)[0], axis=-1)).astype("int32")
    model.set_pseudo_label_state(ready=1.0, label_entropy=np.log(K))
    atoms = model.ssl_loss.terms(z1, z2, labels)
    assert float(atoms["i1"]) > 0.1 and float(atoms["i12"]) > 0.1
    start = [np.array(_numpy(w)) for w in model.weights]
    heads_start = [np.array(_numpy(w)) for w in model.heads.trainable_weights]

    def one_step(supervision_weight, pid_weight):
        model.set_weights(start)
        model.set_pseudo_label_state(supervision_weight=supervision_weight)
        model.ssl_loss.set_coefficients(w_joint=pid_weight, w_red=pid_weight, w_syn=pid_weight)
        model.train_on_batch(view_batch(v1, v2, label=labels))
        heads = [np.array(_numpy(w)) for w in model.heads.trainable_weights]
        encoder = [np.array(_numpy(w)) for w in model.encoder.trainable_weights]
        return heads, encoder

    heads0, encoder0 = one_step(0.0, 0.0)
    heads1, encoder1 = one_step(1.0, 5.0)
    for a, b in zip(heads0, heads1):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert any(np.abs(a - b).max() > 1e-6 for a, b in zip(encoder0, encoder1))
    # The heads do learn, from their own cross-entropy.
    assert any(np.abs(a - s).max() > 1e-6 for a, s in zip(heads0, heads_start))


def test_batches_with_and_without_the_target_view_give_the_same_loss():
    v1, v2, t = make_views(n=16, num_views=3)
    labels = (np.arange(16) % K).astype("int32")
    model = _model(w_syn=1.0)
    model.set_pseudo_label_state(ready=1.0, label_entropy=np.log(K), supervision_weight=0.1)
    model.compile(optimizer="sgd")
    with_target = model.test_on_batch(view_batch(v1, v2, t, label=labels))
    without = model.test_on_batch(view_batch(v1, v2, label=labels))
    np.testing.assert_allclose(with_target, without, rtol=1e-6)
    with pytest.raises(ValueError, match=r"missing \['label'\]"):
        model.test_on_batch(view_batch(v1, v2, t))


def test_fit_trains_and_history_contains_every_atom():
    rng = np.random.default_rng(2)
    images = (rng.uniform(size=(48, 8, 8, 1)) * 255).astype(np.uint8)
    refresh = kps.callbacks.PseudoLabelRefresh(images, epochs=3, warmup_epochs=1, recluster_every=1)
    dataset = kps.data.ssl_dataset(
        images,
        views="pid",
        augment=keras.layers.RandomFlip("horizontal", seed=0),
        batch_size=16,
        pseudo_labels=refresh.labels,
        seed=0,
    )
    model = _model(w_joint=0.1, w_red=0.1, w_syn=1.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(dataset, epochs=3, callbacks=[refresh], verbose=0).history
    names = (
        ATOM_NAMES
        + PSEUDO_LABEL_DIAGNOSTICS
        + ("supervision_term", "supervision_weight", "estimator_term")
        + (
            "joint_term",
            "redundancy_term",
            "synergy_term",
            "pid_grad_ratio",
            "redundancy_reduction",
        )
    )
    for name in names:
        assert name in history and np.all(np.isfinite(history[name])), name
    assert history["label_entropy"][0] == 0.0 and history["label_entropy"][2] > 0.0
    assert history["head_ce12"][2] > 0.0 and history["pid_grad_ratio"][2] > 0.0
    for i1, i2, i12 in zip(history["i1"], history["i2"], history["i12"]):
        assert i12 >= max(i1, i2) - 1e-6


def test_model_round_trips_with_heads_and_pseudo_label_state(tmp_path):
    model = _model(w_syn=1.0)
    model.set_pseudo_label_state(ready=1.0, label_entropy=0.9, supervision_weight=0.03)
    path = os.path.join(tmp_path, "pseudo.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, kps.models.PseudoLabelPIDModel)
    assert restored.num_clusters == K and restored.heads.joint_hidden_dims == (8,)
    np.testing.assert_allclose(
        float(_numpy(restored.ssl_loss.state["supervision_weight"])), 0.03, rtol=1e-6
    )
    np.testing.assert_allclose(
        float(_numpy(restored.ssl_loss.state["label_entropy"])), 0.9, rtol=1e-6
    )
    for a, b in zip(model.heads.weights, restored.heads.weights):
        np.testing.assert_array_equal(_numpy(a), _numpy(b))
    from_preset = kps.models.PseudoLabelPIDModel.from_pid_model(
        kps.presets.pid_ssl(tiny_encoder(), projector_dims=(16, 8)), num_clusters=4
    )
    assert from_preset.heads.num_classes == 4
    assert from_preset.ssl_loss.pid_coefficients["w_syn"] == 1.0


def test_arguments_the_pseudo_label_model_cannot_honour_are_refused():
    loss = kps.losses.PseudoLabelPIDLoss(num_clusters=K, joint_hidden_dims=(8,))
    with pytest.raises(ValueError, match="needs no target network"):
        kps.models.PseudoLabelPIDModel(
            tiny_encoder(), tiny_projector(), num_clusters=K, target_momentum=0.99
        )
    with pytest.raises(ValueError, match=r"`joint_hidden_dims`=\(16,\) differs"):
        kps.models.PseudoLabelPIDModel(
            tiny_encoder(), tiny_projector(), loss=loss, joint_hidden_dims=(16,)
        )
    with pytest.raises(ValueError, match="`num_clusters`=5 differs"):
        kps.models.PseudoLabelPIDModel(tiny_encoder(), tiny_projector(), num_clusters=5, loss=loss)
    model = kps.models.PseudoLabelPIDModel(tiny_encoder(), tiny_projector(), loss=loss)
    assert model.num_clusters == K and model.heads.joint_hidden_dims == (8,)
