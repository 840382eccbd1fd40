"""ssl_dataset: batches of views ready for SSLModel / PIDModel on the active backend."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_pid_ssl as kps


def _images(n=32, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _batches(dataset):
    batches = []
    for batch in dataset:
        assert set(batch) in ({"view1", "view2"}, {"view1", "view2", "target"}), set(batch)
        batches.append(tuple(batch[k].numpy() for k in ("view1", "view2", "target") if k in batch))
    return batches


def test_two_view_batches_are_float_in_unit_range_with_full_batches():
    batches = _batches(kps.data.ssl_dataset(_images(n=37), augment="cifar", batch_size=8, seed=0))
    assert len(batches) == 4  # 37 // 8, the remainder dropped
    for view1, view2 in batches:
        for view in (view1, view2):
            assert view.shape == (8, 8, 8, 3) and view.dtype == np.float32
            assert view.min() >= 0.0 and view.max() <= 1.0


def test_the_two_views_of_each_image_differ():
    images = np.repeat(_images(n=1), 16, axis=0)
    view1, view2 = _batches(kps.data.ssl_dataset(images, augment="grayscale", batch_size=16))[0]
    assert all(not np.allclose(view1[i], view2[i]) for i in range(16))
    assert all(not np.allclose(view1[0], view1[i]) for i in range(1, 16))


def test_pid_views_add_the_clean_target_of_the_same_images():
    images = _images(n=16)
    dataset = kps.data.ssl_dataset(images, views="pid", augment="grayscale", batch_size=16, seed=1)
    view1, view2, target = _batches(dataset)[0]
    assert view1.shape == view2.shape == target.shape == (16, 8, 8, 3)
    # Clean target: the image itself; find each target among the images.
    flat = images.reshape(16, -1).astype(np.float32) / 255
    for t in target:
        assert np.min(np.abs(flat - t.reshape(1, -1)).max(axis=1)) < 1e-6


def test_every_epoch_is_reshuffled_and_covers_every_image():
    images = np.arange(16, dtype=np.uint8).reshape(16, 1, 1, 1) * np.ones((1, 4, 4, 1), np.uint8)
    dataset = kps.data.ssl_dataset(images, views="pid", augment="grayscale", batch_size=4, seed=2)
    epochs = [
        np.concatenate([np.round(b[2][:, 0, 0, 0] * 255) for b in _batches(dataset)])
        for _ in range(2)
    ]
    for order in epochs:
        assert sorted(order) == list(range(16))
    assert not np.array_equal(epochs[0], epochs[1])


def test_image_size_and_a_dataset_of_image_label_pairs():
    images = _images(n=12, size=16)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(12, np.int64)))
    batches = _batches(
        kps.data.ssl_dataset(dataset, views="pid", augment="grayscale", batch_size=4, image_size=8)
    )
    assert len(batches) == 3 and all(v.shape == (4, 8, 8, 3) for b in batches for v in b)


def test_a_views_object_or_a_single_layer_as_augment():
    images = _images(n=8)
    views = kps.augment.preset("grayscale", image_size=8, target="weak")
    assert (
        len(_batches(kps.data.ssl_dataset(images, views="pid", augment=views, batch_size=4))[0])
        == 3
    )
    layer = kps.augment.RandomResizedCrop(8)
    view1, view2 = _batches(kps.data.ssl_dataset(images, augment=layer, batch_size=8))[0]
    assert not np.allclose(view1, view2)


def test_grey_images_with_the_grayscale_preset():
    batches = _batches(
        kps.data.ssl_dataset(_images(n=8, channels=1), augment="grayscale", batch_size=4)
    )
    assert batches[0][0].shape == (4, 8, 8, 1)


@pytest.mark.parametrize("views, model_cls", [("two", "SSLModel"), ("pid", "PIDModel")])
def test_fits_a_tiny_model_for_one_epoch_on_this_backend(views, model_cls):
    dataset = kps.data.ssl_dataset(
        _images(n=32), views=views, augment="grayscale", batch_size=16, seed=3
    )
    encoder = kps.backbones.SmallConvNet(input_shape=(8, 8, 3), widths=(4,))
    projector = kps.heads.Projector(hidden_dims=(8,), output_dim=8)
    if model_cls == "SSLModel":
        model = kps.SSLModel(encoder, projector, loss=kps.losses.BarlowTwinsLoss())
    else:
        model = kps.PIDModel(
            encoder, projector, loss=kps.losses.PIDLoss(), track_gradient_ratio=False
        )
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(dataset, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(images=_images().astype(np.float32)), ValueError, "uint8"),
        (dict(images=_images()[..., 0]), ValueError, "shape"),
        (dict(images=_images(channels=2)), ValueError, "channels"),
        (dict(batch_size=1), ValueError, "batch_size"),
        (dict(batch_size=2.5), ValueError, "batch_size"),
        (dict(batch_size=64), ValueError, "exceeds the number of images"),
        (dict(views="three"), ValueError, "`views`"),
        (dict(augment="simclr"), ValueError, "Unknown augmentation preset"),
        (dict(augment=lambda x: x), ValueError, "`augment`"),
        (dict(target_view="blurred"), ValueError, "target_view"),
        (
            dict(images=tf.data.Dataset.from_tensor_slices(np.zeros((4, 8, 8, 3), np.float32))),
            ValueError,
            "uint8",
        ),
        (
            dict(images=tf.data.Dataset.from_tensor_slices(_images()).batch(4)),
            ValueError,
            "unbatch",
        ),
    ],
)
def test_bad_arguments_are_explained(kwargs, error, match):
    arguments = dict(images=_images(), batch_size=8)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        kps.data.ssl_dataset(**arguments)


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="keras.Sequential works in tf.data on TensorFlow",
)
def test_a_sequential_augmentation_is_refused_with_the_pipeline_advice():
    sequential = keras.Sequential([kps.augment.RandomResizedCrop(8)])
    with pytest.raises(ValueError, match="keras.layers.Pipeline"):
        kps.data.ssl_dataset(_images(), augment=sequential, batch_size=8)
    nested = kps.augment.RandomApply(keras.Sequential([kps.augment.Solarize()]), 0.5)
    with pytest.raises(ValueError, match="keras.layers.Pipeline"):
        kps.data.labeled_dataset(*(_images(), np.zeros(32, int)), augment=nested)


def test_a_pipeline_augmentation_works_on_every_backend():
    pipeline = keras.layers.Pipeline(
        [kps.augment.RandomResizedCrop(8), keras.layers.RandomFlip("horizontal")]
    )
    view1, view2 = _batches(kps.data.ssl_dataset(_images(), augment=pipeline, batch_size=8))[0]
    assert view1.shape == (8, 8, 8, 3) and not np.allclose(view1, view2)


def test_checking_the_first_batch_consumes_nothing_from_the_epoch_order():
    from keras_pid_ssl.utils.batches import first_batch

    images = _images()
    dataset = kps.data.ssl_dataset(images, views="pid", augment="cifar", batch_size=4, seed=3)
    peeked = first_batch(dataset)
    assert int(dataset.epoch.numpy()) == 0
    first = next(iter(dataset))
    for key in ("view1", "view2", "target"):
        np.testing.assert_array_equal(peeked[key], first[key].numpy())
    # SSLModel.fit's check leaves the counter too: fit's first epoch is pass 0.
    model = kps.SSLModel(
        kps.backbones.SmallConvNet(input_shape=images.shape[1:], widths=(4,)),
        kps.heads.Projector(hidden_dims=(8,), output_dim=4),
        loss=kps.losses.BarlowTwinsLoss(),
    )
    dataset = kps.data.ssl_dataset(images, augment="cifar", batch_size=4, seed=3)
    model._check_first_batch(dataset)
    assert int(dataset.epoch.numpy()) == 0
