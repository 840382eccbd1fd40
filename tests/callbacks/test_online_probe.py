"""OnlineLinearProbe: a linear classifier on frozen backbone features, each epoch."""

import math

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch
from keras_pid_ssl.callbacks.online_probe import OnlineLinearProbe


def identity_encoder(dim):
    inputs = keras.Input((dim,))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def separable_features(n, num_classes=3, dim=8, seed=0):
    """Classes split by a random linear map with a margin (linearly separable)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(dim, num_classes))
    features = rng.normal(size=(4 * n, dim)).astype("float32")
    scores = features @ weights
    top2 = np.sort(scores, axis=1)[:, -2:]
    keep = (top2[:, 1] - top2[:, 0]) > 1.0
    return features[keep][:n], scores[keep][:n].argmax(axis=1)


def test_probe_learns_linearly_separable_features_with_warm_starts():
    features, labels = separable_features(400, seed=0)
    x_train, y_train, x_test, y_test = features[:300], labels[:300], features[300:], labels[300:]
    probe = OnlineLinearProbe(
        (x_train, y_train),
        (x_test, y_test),
        probe_epochs=5,
        batch_size=64,
        optimizer=keras.optimizers.Adam(2e-2),
        encoder=identity_encoder(8),
    )
    first = probe.evaluate()
    head = probe.probe
    for _ in range(2):
        last = probe.evaluate()
    assert probe.probe is head  # the same probe, trained further (warm start)
    assert last["probe_accuracy"] >= 0.95
    assert last["probe_accuracy"] >= first["probe_accuracy"] - 0.02
    assert "probe_top5" not in last  # 3 classes: top-5 is meaningless


def test_probe_logs_accuracy_during_ssl_fit():
    view1, view2 = make_views(n=32)
    labels = np.arange(32) % 10
    model = kps.SSLModel(tiny_encoder(), tiny_projector(), loss=kps.losses.BarlowTwinsLoss())
    model.compile(optimizer="adam")
    uint8_images = (view1 * 255).round().astype("uint8")  # uint8 is read as [0, 255]
    probe = OnlineLinearProbe(
        (uint8_images[:24], labels[:24]),
        (uint8_images[24:], labels[24:]),
        num_classes=10,
        probe_epochs=2,
        batch_size=8,
    )
    history = model.fit(
        view_batch(view1, view2), batch_size=16, epochs=2, callbacks=[probe], verbose=0
    )
    for name in ("probe_accuracy", "probe_top5"):
        values = history.history[name]
        assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values)
    assert all(
        a <= t
        for a, t in zip(
            history.history["probe_accuracy"], history.history["probe_top5"], strict=True
        )
    )
    assert [row["epoch"] for row in probe.history] == [1, 2]
    # The probe never touches the backbone: its only weights are its own.
    assert len(probe.probe.trainable_weights) == 2


def test_probe_skipped_epochs_log_nan():
    features, labels = separable_features(40, seed=1)
    probe = OnlineLinearProbe(
        (features, labels), (features, labels), every=3, encoder=identity_encoder(8)
    )
    probe.set_params({"epochs": 10})
    logs = {}
    probe.on_epoch_end(0, logs)
    assert math.isnan(logs["probe_accuracy"])
    probe.on_epoch_end(2, logs)
    assert 0.0 <= logs["probe_accuracy"] <= 1.0


def test_probe_rejects_bad_arguments():
    images, labels = np.zeros((4, 8, 8, 1), "float32"), np.zeros(4, "int64")
    with pytest.raises(ValueError, match="probe_epochs"):
        OnlineLinearProbe((images, labels), (images, labels), probe_epochs=0)
    with pytest.raises(ValueError, match="every"):
        OnlineLinearProbe((images, labels), (images, labels), every=0)
    with pytest.raises(ValueError, match="test_data"):
        OnlineLinearProbe((images, labels), (images,))


def test_probe_checks_labels_against_num_classes_on_the_host():
    images = np.zeros((4, 8, 8, 1), "float32")
    labels = np.array([0, 1, 2, 5])
    # A label >= num_classes used to fail inside the probe's compiled step
    # ("Graph execution error"); it is caught when the callback gets its data.
    with pytest.raises(ValueError, match=r"`train_data` must hold class labels in \[0, 3\)"):
        OnlineLinearProbe((images, labels), (images, labels[:3].repeat(2)[:4]), num_classes=3)
    with pytest.raises(ValueError, match=r"`test_data` .* Received labels in \[-1, 1\]"):
        OnlineLinearProbe((images, labels), (images, np.array([0, -1, 1, 1])))
    with pytest.raises(
        ValueError, match="`num_classes` must be an int >= 2. Received: num_classes=1"
    ):
        OnlineLinearProbe((images, np.zeros(4, "int64")), (images, np.zeros(4, "int64")))
    with pytest.raises(
        ValueError, match="`batch_size` must be an int >= 1. Received: batch_size=0"
    ):
        OnlineLinearProbe((images, labels), (images, labels), batch_size=0)
    probe = OnlineLinearProbe((images, labels), (images, labels))
    assert probe.num_classes == 6  # inferred: the largest label + 1
