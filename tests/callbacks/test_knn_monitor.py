"""KNNMonitor: weighted kNN (k=200, cosine, T=0.1) accuracy of backbone features."""

import math

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch
from keras_pid_ssl.callbacks.knn_monitor import KNNMonitor
from keras_pid_ssl.callbacks.knn_monitor import weighted_knn_scores
from keras_pid_ssl.metrics import top_k_accuracy


def reference_knn_scores(train, train_labels, test, num_classes, k, temperature):
    """InstDisc / solo-learn weighted kNN, one test sample at a time."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    k = min(k, len(train))
    scores = np.zeros((len(test), num_classes))
    for i, query in enumerate(test):
        similarity = train @ query
        for j in np.argsort(similarity)[::-1][:k]:
            scores[i, train_labels[j]] += math.exp(similarity[j] / temperature)
    return scores


@pytest.mark.parametrize("k, temperature", [(1, 0.1), (7, 0.1), (40, 0.5), (500, 0.07)])
def test_weighted_knn_scores_match_a_numpy_reference(k, temperature):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 6))
    labels = rng.integers(0, 4, size=300)
    test = rng.normal(size=(270, 6))  # more than one 256-row chunk
    got = weighted_knn_scores(train, labels, test, num_classes=4, k=k, temperature=temperature)
    expected = reference_knn_scores(train, labels, test, 4, k, temperature)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_top_k_accuracy_counts_labels_among_the_k_best_scores():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 0])
    assert top_k_accuracy(scores, labels, k=1) == pytest.approx(1 / 3)
    assert top_k_accuracy(scores, labels, k=2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, labels, k=3) == pytest.approx(1.0)


def identity_encoder(dim):
    inputs = keras.Input((dim,))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def test_knn_monitor_matches_reference_accuracy_on_given_features():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(7, 5)) * 3
    train_labels = rng.integers(0, 7, size=400)
    test_labels = rng.integers(0, 7, size=100)
    train = (centres[train_labels] + rng.normal(size=(400, 5))).astype("float32")
    test = (centres[test_labels] + rng.normal(size=(100, 5))).astype("float32")
    monitor = KNNMonitor((train, train_labels), (test, test_labels), encoder=identity_encoder(5))
    metrics = monitor.evaluate()
    expected = reference_knn_scores(train, train_labels, test, 7, 200, 0.1)
    assert metrics["knn_accuracy"] == pytest.approx(np.mean(expected.argmax(1) == test_labels))
    assert metrics["knn_accuracy"] > 0.8
    assert metrics["knn_accuracy"] <= metrics["knn_top5"]


def test_knn_monitor_logs_accuracy_during_ssl_fit_every_n_epochs():
    view1, view2 = make_views(n=32)
    labels = np.arange(32) % 10
    model = kps.SSLModel(tiny_encoder(), tiny_projector(), loss=kps.losses.BarlowTwinsLoss())
    model.compile(optimizer="adam")
    monitor = KNNMonitor(
        (view1[:24], labels[:24]), (view1[24:], labels[24:]), num_classes=10, every=2
    )
    history = model.fit(
        view_batch(view1, view2), batch_size=16, epochs=3, callbacks=[monitor], verbose=0
    )
    accuracy = history.history["knn_accuracy"]
    # Epoch 1 is skipped (NaN); epoch 2 (every=2) and epoch 3 (the last) are evaluated.
    assert math.isnan(accuracy[0])
    assert all(0.0 <= a <= 1.0 for a in accuracy[1:])
    assert [row["epoch"] for row in monitor.history] == [2, 3]
    assert len(history.history["knn_top5"]) == 3


def test_knn_monitor_rejects_bad_arguments():
    images, labels = np.zeros((4, 8, 8, 1), "float32"), np.zeros(4, "int64")
    with pytest.raises(ValueError, match="`k`"):
        KNNMonitor((images, labels), (images, labels), k=0)
    with pytest.raises(ValueError, match="temperature"):
        KNNMonitor((images, labels), (images, labels), temperature=0.0)
    with pytest.raises(ValueError, match="as many labels"):
        KNNMonitor((images, labels[:3]), (images, labels))
    with pytest.raises(ValueError, match="train_data"):
        KNNMonitor(images, (images, labels))


def test_knn_monitor_rejects_unlabeled_and_out_of_range_labels_when_constructed():
    images = np.zeros((4, 8, 8, 1), "float32")
    good, unlabeled = np.array([0, 1, 2, 1]), np.array([0, -1, 2, 1])
    # -1 (an unlabeled image) used to index the last class silently or raise an IndexError.
    with pytest.raises(ValueError, match=r"`train_data` must hold class labels in \[0, 3\)"):
        KNNMonitor((images, unlabeled), (images, good))
    with pytest.raises(ValueError, match=r"`test_data` .* Received labels in \[-1, 2\]"):
        KNNMonitor((images, good), (images, unlabeled))
    with pytest.raises(ValueError, match=r"`train_data` must hold class labels in \[0, 2\)"):
        KNNMonitor((images, good), (images, good), num_classes=2)
    with pytest.raises(ValueError, match="`test_data` must hold integer class labels"):
        KNNMonitor((images, good), (images, np.array([0.0, 1.5, 2.0, 1.0])))
    with pytest.raises(ValueError, match="`num_classes` must be an int >= 1"):
        KNNMonitor((images, good), (images, good), num_classes=2.5)
    with pytest.raises(ValueError, match="`batch_size` must be an int >= 1"):
        KNNMonitor((images, good), (images, good), batch_size=0)
    monitor = KNNMonitor((images, good), (images, np.array([0.0, 1.0, 2.0, 1.0])))
    assert monitor.num_classes == 3 and monitor.test_labels.dtype == np.int64


def test_weighted_knn_scores_name_bad_train_labels():
    features = np.eye(3)
    with pytest.raises(ValueError, match=r"`train_labels` must hold class labels in \[0, 3\)"):
        weighted_knn_scores(features, np.array([0, -1, 2]), features, num_classes=3)
    with pytest.raises(ValueError, match=r"Received labels in \[0, 3\]"):
        weighted_knn_scores(features, np.array([0, 3, 2]), features, num_classes=3)
