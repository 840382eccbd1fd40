"""labeled_dataset: (images, labels) batches for probes and evaluation."""

import numpy as np
import pytest
import tensorflow as tf

import keras_pid_ssl as kps


def _data(n=10, size=8, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
    return images, rng.integers(0, 5, n)


def _collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def test_evaluation_batches_keep_order_and_the_last_partial_batch():
    images, labels = _data()
    dataset = kps.data.labeled_dataset(images, labels, batch_size=4)
    sizes = [len(y) for _, y in dataset]
    got_images, got_labels = _collect(dataset)
    assert sizes == [4, 4, 2]
    assert got_images.dtype == np.float32 and got_labels.dtype == np.int32
    np.testing.assert_allclose(got_images, images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(got_labels, labels)


def test_training_batches_are_shuffled_pairs_kept_together():
    images = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1) * np.ones((1, 4, 4, 3), np.uint8)
    labels = np.arange(12)
    dataset = kps.data.labeled_dataset(
        images, labels, batch_size=4, shuffle=True, drop_remainder=True, seed=1
    )
    got_images, got_labels = _collect(dataset)
    np.testing.assert_allclose(np.round(got_images[:, 0, 0, 0] * 255), got_labels)
    assert sorted(got_labels) == list(range(12)) and not np.array_equal(got_labels, labels)


def test_resizing_and_crop_flip_augmentation():
    images, labels = _data(size=16)
    out, _ = _collect(kps.data.labeled_dataset(images, labels, batch_size=5, image_size=8))
    np.testing.assert_allclose(
        out, tf.image.resize(images / 255.0, (8, 8), antialias=True).numpy(), atol=1e-5
    )
    out, _ = _collect(
        kps.data.labeled_dataset(images, labels, batch_size=5, augment="crop_flip", image_size=8)
    )
    assert out.shape == (10, 8, 8, 3) and out.min() >= 0 and out.max() <= 1


def test_flip_only_mirrors_some_images():
    images, labels = _data(n=40)
    out, _ = _collect(
        kps.data.labeled_dataset(images, labels, batch_size=40, augment="flip", seed=0)
    )
    flipped = np.all(np.isclose(out, images[:, :, ::-1] / 255.0), axis=(1, 2, 3))
    same = np.all(np.isclose(out, images / 255.0), axis=(1, 2, 3))
    assert np.all(flipped | same) and 0 < flipped.sum() < 40


def test_a_dataset_of_image_label_pairs():
    images, labels = _data()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    _, got_labels = _collect(kps.data.labeled_dataset(dataset, batch_size=3))
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=None), "`labels` is required"),
        (dict(labels=np.zeros(3, int)), "shape \\(10,\\)"),
        (dict(labels=np.full(10, 0.5)), "ints"),
        (dict(labels=np.full(10, -1)), "unlabeled"),
        (dict(batch_size=0), "batch_size"),
        (dict(augment="colour"), "`augment`"),
        (dict(images=np.zeros((10, 8, 8, 3), np.float64)), "uint8"),
    ],
)
def test_bad_arguments_are_explained(kwargs, match):
    images, labels = _data()
    arguments = dict(images=images, labels=labels)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        kps.data.labeled_dataset(**arguments)
