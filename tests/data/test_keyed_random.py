"""Epoch-keyed pipelines: pass `e` depends on `(seed, e)` only."""

import numpy as np
import pytest

import keras_pid_ssl as kps


def _images(n=24, size=8, same=False):
    rng = np.random.default_rng(0)
    if same:
        return np.repeat(rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8), n, axis=0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _pass(dataset):
    # Views in order (view1, view2[, target]), from dict or tuple batches.
    return [
        tuple(np.asarray(x) for x in (batch.values() if isinstance(batch, dict) else batch))
        for batch in dataset
    ]


def _equal(a, b):
    return len(a) == len(b) and all(
        all(np.array_equal(x, y) for x, y in zip(p, q, strict=True))
        for p, q in zip(a, b, strict=True)
    )


def test_same_seed_gives_the_same_passes_and_each_pass_differs():
    images = _images()
    first = kps.data.ssl_dataset(images, views="pid", batch_size=8, seed=7)
    second = kps.data.ssl_dataset(images, views="pid", batch_size=8, seed=7)
    passes = [_pass(first) for _ in range(2)]
    assert _equal(passes[0], _pass(second)) and _equal(passes[1], _pass(second))
    assert not _equal(passes[0], passes[1])
    assert int(first.epoch.numpy()) == 2
    other = kps.data.ssl_dataset(images, views="pid", batch_size=8, seed=8)
    assert not _equal(passes[0], _pass(other))
    assert int(first.cardinality()) == 3  # known: progress bars show it


def test_setting_the_epoch_replays_that_pass():
    images = _images()
    dataset = kps.data.ssl_dataset(images, batch_size=8, seed=1)
    passes = [_pass(dataset) for _ in range(3)]
    fresh = kps.data.ssl_dataset(images, batch_size=8, seed=1)
    callback = kps.callbacks.DataEpoch(fresh)
    callback.on_epoch_begin(2)
    assert _equal(_pass(fresh), passes[2])
    callback.on_epoch_begin(0)
    assert _equal(_pass(fresh), passes[0])


def test_every_batch_gets_its_own_augmentation():
    # Identical images: any difference between views comes from the keys.
    dataset = kps.data.ssl_dataset(_images(same=True), batch_size=8, seed=0)
    batches = _pass(dataset)
    views = np.concatenate([b[0] for b in batches])
    flat = views.reshape(len(views), -1)
    assert len(np.unique(flat, axis=0)) == len(flat)
    assert not np.array_equal(batches[0][0], batches[0][1])  # view 1 vs view 2


def test_shuffle_is_a_new_permutation_every_pass():
    labels = np.arange(20)
    dataset = kps.data.labeled_dataset(_images(20), labels, batch_size=6, shuffle=True, seed=3)
    orders = [np.concatenate([b[1] for b in _pass(dataset)]) for _ in range(2)]
    for order in orders:
        assert sorted(order.tolist()) == labels.tolist()
    assert orders[0].tolist() != orders[1].tolist()
    assert kps.data.labeled_dataset(_images(20), labels, batch_size=6).epoch is not None


def test_dataset_inputs_are_keyed_too():
    import tensorflow as tf

    source = tf.data.Dataset.from_tensor_slices(_images())
    dataset = kps.data.ssl_dataset(source, batch_size=8, seed=5)
    passes = [_pass(dataset) for _ in range(2)]
    assert not _equal(passes[0], passes[1])
    dataset.epoch.assign(1)
    assert _equal(_pass(dataset), passes[1])


def test_data_epoch_rejects_other_datasets():
    import tensorflow as tf

    with pytest.raises(ValueError, match="made by kps.data.ssl_dataset"):
        kps.callbacks.DataEpoch(tf.data.Dataset.range(3))


def test_unseeded_pipelines_follow_keras_global_seed():
    import keras

    images = _images()
    keras.utils.set_random_seed(11)
    first = _pass(kps.data.ssl_dataset(images, batch_size=8))
    keras.utils.set_random_seed(11)
    assert _equal(_pass(kps.data.ssl_dataset(images, batch_size=8)), first)
    assert not _equal(_pass(kps.data.ssl_dataset(images, batch_size=8)), first)


def test_labeled_augmentation_is_keyed_too():
    # crop_flip: the random resized crop and the flip both follow the batch key.
    images, labels = _images(16), np.arange(16)
    dataset = kps.data.labeled_dataset(
        images, labels, batch_size=8, augment="crop_flip", shuffle=True, seed=2
    )
    passes = [_pass(dataset) for _ in range(2)]
    assert not _equal(passes[0], passes[1])
    fresh = kps.data.labeled_dataset(
        images, labels, batch_size=8, augment="crop_flip", shuffle=True, seed=2
    )
    fresh.epoch.assign(1)
    assert _equal(_pass(fresh), passes[1])


def test_the_flip_alone_is_keyed():
    # One image repeated: each output is that image or its mirror; a replayed
    # pass flips the same copies, the next pass others.
    images = np.repeat(_images(1), 32, axis=0)
    original = images[0].astype("float32") / 255.0
    dataset = kps.data.labeled_dataset(images, np.zeros(32, int), batch_size=32, augment="flip")
    masks = []
    for _ in range(2):
        out = _pass(dataset)[0][0]
        mirrored = np.all(np.isclose(out, original[:, ::-1]), axis=(1, 2, 3))
        assert np.all(mirrored | np.all(np.isclose(out, original), axis=(1, 2, 3)))
        masks.append(mirrored)
    assert 0 < masks[0].sum() < 32 and not np.array_equal(masks[0], masks[1])
    dataset.epoch.assign(0)
    out = _pass(dataset)[0][0]
    np.testing.assert_array_equal(
        np.all(np.isclose(out, original[:, ::-1]), axis=(1, 2, 3)), masks[0]
    )
