"""PseudoLabelRefresh: seeded k-means, schedule, labels in the pipeline, resume."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_pid_ssl as kps
from conftest import tiny_encoder
from conftest import tiny_projector
from keras_pid_ssl.callbacks.pseudo_labels import align_labels


def _images(n=48, size=8, seed=0):
    """uint8 images whose constant pixel value is the image index."""
    del seed
    return np.broadcast_to(
        np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 1)
    ).copy()


def _blobs(rng, per_blob=30, centres=((4, 0, 0), (0, 4, 0), (0, 0, 4))):
    truth = np.repeat(np.arange(len(centres)), per_blob)
    features = np.asarray(centres, np.float64)[truth] + 0.3 * rng.normal(size=(len(truth), 3))
    order = rng.permutation(len(truth))
    return features[order], truth[order]


def test_kmeans_labels_are_stable_for_a_fixed_seed_and_recover_blobs():
    features, truth = _blobs(np.random.default_rng(0))
    refresh = kps.callbacks.PseudoLabelRefresh(
        _images(len(truth)), epochs=10, num_clusters=3, seed=7
    )
    first = refresh.cluster(features)
    np.testing.assert_array_equal(first, refresh.cluster(features))
    # Every cluster is exactly one blob: the contingency table is a permutation.
    contingency = np.zeros((3, 3), int)
    np.add.at(contingency, (first, truth), 1)
    assert sorted((contingency > 0).sum(axis=0)) == [1, 1, 1]
    assert sorted(contingency.max(axis=0)) == [30, 30, 30]


def test_align_labels_undoes_a_renaming_of_the_clusters():
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 5, size=200)
    permutation = rng.permutation(5)
    renamed = permutation[reference]
    noisy = renamed.copy()
    noisy[:10] = (noisy[:10] + 1) % 5  # a few images really changed cluster
    np.testing.assert_array_equal(align_labels(renamed, reference, 5), reference)
    aligned = align_labels(noisy, reference, 5)
    np.testing.assert_array_equal(aligned[10:], reference[10:])


def test_schedule_refreshes_after_warmup_and_ramps_the_supervision_log_linearly():
    refresh = kps.callbacks.PseudoLabelRefresh(
        _images(),
        epochs=10,
        warmup_epochs=2,
        recluster_every=3,
        supervision_weight_range=(1e-4, 1e-2),
    )
    assert [e for e in range(10) if refresh.is_refresh_epoch(e)] == [2, 5, 8]
    weights = [refresh.supervision_weight_at(e) for e in range(10)]
    assert weights[:2] == [0.0, 0.0]
    # Log-linear from 1e-4 at epoch 2 to 1e-2 at epoch 9: 1e-4 * 100 ** ((e - 2) / 7).
    np.testing.assert_allclose(
        weights[2:], [1e-4 * 100 ** ((e - 2) / 7) for e in range(2, 10)], rtol=1e-9
    )
    defaults = kps.callbacks.PseudoLabelRefresh(_images(), epochs=1000)
    assert (defaults.warmup_epochs, defaults.recluster_every) == (100, 100)


def test_dataset_yields_the_refreshed_labels_after_a_refresh():
    images = _images(48)
    refresh = kps.callbacks.PseudoLabelRefresh(images, epochs=4, num_clusters=3)
    dataset = kps.data.ssl_dataset(
        images,
        views="pid",
        augment=keras.layers.Rescaling(1.0),
        batch_size=16,
        pseudo_labels=refresh.labels,
        seed=0,
    )

    def seen():
        pairs = []
        for batch in dataset.as_numpy_iterator():
            view1, labels = batch["view1"], batch["label"]
            np.testing.assert_allclose(batch["target"], view1)
            pairs.append(np.stack([np.rint(view1[:, 0, 0, 0] * 255).astype(int), labels], 1))
        return np.concatenate(pairs)

    before = seen()
    assert np.all(before[:, 1] == 0)
    new_labels = (np.arange(48) * 7) % 3
    refresh.labels.assign(new_labels.astype(np.int32))
    after = seen()
    assert len(after) == 48
    np.testing.assert_array_equal(after[:, 1], new_labels[after[:, 0]])
    two_views = kps.data.ssl_dataset(
        images, augment=keras.layers.Rescaling(1.0), batch_size=16, pseudo_labels=refresh.labels
    )
    batch = next(iter(two_views.as_numpy_iterator()))
    assert set(batch) == {"view1", "view2", "label"}
    view1, labels = batch["view1"], batch["label"]
    np.testing.assert_array_equal(labels, new_labels[np.rint(view1[:, 0, 0, 0] * 255).astype(int)])


class LabelRecorder(keras.Model):
    """Reports the mean pseudo-label of the batches it trains on."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.label_mean = keras.metrics.Mean(name="label_mean")

    def call(self, x):
        return self.dense(keras.ops.mean(x["view1"], axis=(1, 2)))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.label_mean.update_state(keras.ops.cast(x["label"], "float32"))
        return keras.ops.mean(keras.ops.square(y_pred))


def test_fit_trains_on_the_refreshed_labels_from_the_next_epoch():
    images = _images(32)
    refresh = kps.callbacks.PseudoLabelRefresh(images, epochs=3, num_clusters=3)
    dataset = kps.data.ssl_dataset(
        images,
        views="pid",
        augment=keras.layers.Rescaling(1.0),
        batch_size=16,
        pseudo_labels=refresh.labels,
    )
    relabel = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: refresh.labels.assign(np.full(32, epoch + 1, np.int32))
    )
    model = LabelRecorder()
    model.compile(optimizer="sgd")
    history = model.fit(dataset, epochs=3, callbacks=[relabel], verbose=0).history
    np.testing.assert_allclose(history["label_mean"], [0.0, 1.0, 2.0])


def test_bad_arguments_are_rejected_with_clear_errors():
    images = _images(16)
    with pytest.raises(ValueError, match="num_clusters"):
        kps.callbacks.PseudoLabelRefresh(images, epochs=4, num_clusters=1)
    with pytest.raises(ValueError, match="supervision_weight_range"):
        kps.callbacks.PseudoLabelRefresh(images, epochs=4, supervision_weight_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="images"):
        kps.callbacks.PseudoLabelRefresh(images[..., 0], epochs=4)
    with pytest.raises(ValueError, match="pseudo_labels"):
        kps.data.ssl_dataset(images, batch_size=8, pseudo_labels=np.zeros(16, np.int32))
    with pytest.raises(ValueError, match="one label per image"):
        kps.data.ssl_dataset(images, batch_size=8, pseudo_labels=tf.Variable(np.zeros(8, np.int32)))
    refresh = kps.callbacks.PseudoLabelRefresh(images, epochs=2, num_clusters=2)
    refresh.set_model(kps.PIDModel(tiny_encoder(), tiny_projector()))
    with pytest.raises(ValueError, match="PseudoLabelPIDModel"):
        refresh.on_train_begin()


def _pseudo_label_model():
    model = kps.models.PseudoLabelPIDModel(
        tiny_encoder(),
        tiny_projector(),
        num_clusters=3,
        joint_hidden_dims=(8,),
        loss=kps.losses.PIDLoss(w_syn=1.0, units="nats"),
        track_gradient_ratio=False,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


class StateRecorder(keras.callbacks.Callback):
    """Records the labels and the model's pseudo-label state as fit sees them."""

    def __init__(self, refresh):
        super().__init__()
        self.refresh = refresh
        self.rows = {}

    def _row(self):
        model = self.model
        return {
            "labels": self.refresh.labels.numpy().copy(),
            "supervision_weight": float(
                keras.ops.convert_to_numpy(model.ssl_loss.state["supervision_weight"])
            ),
            "ready": float(keras.ops.convert_to_numpy(model.ssl_loss.state["pseudo_labels_ready"])),
            "label_entropy": float(
                keras.ops.convert_to_numpy(model.ssl_loss.state["label_entropy"])
            ),
        }

    def on_train_begin(self, logs=None):
        self.rows["train_begin"] = self._row()

    def on_epoch_begin(self, epoch, logs=None):
        self.rows[epoch] = self._row()


def _run(tmp_path, images, epochs):
    refresh = kps.callbacks.PseudoLabelRefresh(
        images, epochs=4, warmup_epochs=1, recluster_every=2, batch_size=48, seed=3
    )
    backup = kps.callbacks.ResumableBackup(tmp_path, extra_state=refresh)
    recorder = StateRecorder(refresh)
    dataset = kps.data.ssl_dataset(
        images,
        augment=keras.layers.RandomFlip("horizontal", seed=0),
        batch_size=16,
        pseudo_labels=refresh.labels,
        seed=0,
    )
    model = _pseudo_label_model()
    history = model.fit(dataset, epochs=epochs, callbacks=[refresh, backup, recorder], verbose=0)
    return refresh, backup, recorder, history.history


def test_refresh_on_schedule_and_a_resumed_run_keeps_labels_and_supervision(tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.uniform(size=(48, 8, 8, 1)) * 255).astype(np.uint8)
    alpha = [0.0, 1e-5, 1e-3, 1e-1]  # log-linear over epochs 1..3

    # An interrupted run: 2 of 4 epochs, clustered at the beginning of epoch 1.
    refresh, _, recorder, history = _run(tmp_path, images, epochs=2)
    assert refresh.refresh_epochs == [1]
    assert recorder.rows[0]["ready"] == 0.0 and recorder.rows[1]["ready"] == 1.0
    np.testing.assert_array_equal(recorder.rows[0]["labels"], 0)
    labels = refresh.labels.numpy().copy()
    assert len(np.unique(labels)) > 1
    np.testing.assert_allclose(history["supervision_weight"], alpha[:2], rtol=1e-5)
    np.testing.assert_allclose(history["label_entropy"][1], refresh.label_entropy, rtol=1e-5)
    assert history["head_ce1"][0] == 0.0 and history["head_ce1"][1] > 0.0
    assert (
        math.isnan(history["pseudo_label_changed"][0]) and history["pseudo_label_changed"][1] == 1.0
    )

    # The same command again, with fresh objects: resumes at epoch 2.
    refresh2, backup2, recorder2, history2 = _run(tmp_path, images, epochs=4)
    assert backup2.resumed_from_epoch == 2
    begin = recorder2.rows["train_begin"]  # right after the backup was loaded
    np.testing.assert_array_equal(begin["labels"], labels)
    np.testing.assert_allclose(begin["supervision_weight"], alpha[1], rtol=1e-5)
    assert begin["ready"] == 1.0
    np.testing.assert_allclose(begin["label_entropy"], refresh.label_entropy, rtol=1e-6)
    np.testing.assert_array_equal(recorder2.rows[2]["labels"], labels)  # no refresh at epoch 2
    assert refresh2.refresh_epochs == [1, 3]
    np.testing.assert_allclose(history2["supervision_weight"], alpha[2:], rtol=1e-5)
    assert math.isnan(history2["pseudo_label_changed"][0])
    assert 0.0 <= history2["pseudo_label_changed"][1] <= 1.0


def test_pretrain_with_the_pseudo_label_target_clusters_once_per_schedule(
    tiny_fashion_mnist, tmp_path
):
    summary = kps.training.pretrain(
        str(tmp_path / "run"),
        dataset="fashion_mnist",
        data_dir=tiny_fashion_mnist,
        method="pid",
        backbone="small_convnet",
        backbone_options={"widths": [4, 8]},
        epochs=2,
        batch_size=16,
        optimizer="adamw",
        warmup_epochs=1,
        projector_dims=(16, 8),
        pid_target="pseudo_label",
        recluster_every=5,
        pid_warmup_epochs=1,
        probe_subset=32,
        knn_every=0,
        monitor_size=0,
        export=False,
        verbose=0,
    )
    assert summary["config"]["num_clusters"] == 4  # the number of classes
    assert [row["epoch"] for row in summary["pseudo_label_refreshes"]] == [1]
    metrics = summary["final_metrics"]
    np.testing.assert_allclose(metrics["supervision_weight"], 1e-5, rtol=1e-5)  # ramp start
    assert metrics["label_entropy"] > 0 and np.isfinite(metrics["synergy"])
    with pytest.raises(ValueError, match="pseudo_label"):
        kps.training.pretrain(
            str(tmp_path / "bad"), method="barlow_twins", pid_target="pseudo_label"
        )
