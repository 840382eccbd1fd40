"""RandomResizedCrop: torchvision's box distribution, one box per image, exact resampling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pid_ssl.augment import RandomResizedCrop


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _in_tf_data(layer, images, batch_size=None):
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size or len(images))
    return np.concatenate([b.numpy() for b in dataset.map(lambda b: layer(b, training=True))])


def _reference_crop_resize(image, box, size):
    """Crop the integer box, then tf.image.resize's half-pixel bilinear (an
    independent implementation of resizing the cropped image)."""
    top, left, height, width = (int(v) for v in box)
    crop = image[top : top + height, left : left + width]
    return tf.image.resize(crop[None], size, method="bilinear", antialias=False)[0].numpy()


# Eager tests share one input shape, (8, 16, 16, 3): JAX compiles every
# primitive once per shape.
def _images(channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(8, 16, 16, channels)).astype("float32")


def test_output_shape_dtype_and_range():
    images = _images()
    out = _numpy(RandomResizedCrop((8, 12))(images))
    assert out.shape == (8, 8, 12, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_every_image_gets_its_own_box():
    images = np.repeat(_images()[:1], 8, axis=0)
    layer = RandomResizedCrop(8, seed=3)
    boxes = _numpy(layer.get_random_transformation(images)["boxes"])
    assert len({tuple(b) for b in boxes}) == 8
    out = _numpy(layer(images))
    assert all(not np.allclose(out[0], out[i]) for i in range(1, 8))


def test_boxes_follow_torchvision_area_and_ratio_ranges():
    images = np.zeros((400, 40, 50, 1), "float32")
    layer = RandomResizedCrop(16, scale=(0.2, 0.6), ratio=(0.5, 2.0), seed=0)
    top, left, height, width = _numpy(layer.get_random_transformation(images)["boxes"]).T
    for values in (top, left, height, width):
        np.testing.assert_array_equal(values, np.round(values))  # integer pixel boxes
    assert np.all(top >= 0) and np.all(left >= 0)
    assert np.all(top + height <= 40) and np.all(left + width <= 50)
    # Rounding a box side moves the area by less than one pixel row / column.
    area = height * width / (40 * 50)
    slack = (height + width + 1) / (40 * 50)
    assert np.all(area >= 0.2 - slack) and np.all(area <= 0.6 + slack)
    ratio = width / height
    assert np.all(ratio >= 0.5 * (1 - 1 / height) - 1e-6)
    assert np.all(ratio <= 2.0 * (1 + 1 / height) + 1e-6)
    # log-uniform ratio: about half the boxes are wider than tall.
    assert 0.35 < np.mean(ratio > 1.0) < 0.65


def test_fallback_is_the_central_box_within_the_ratio_range():
    # No box of area >= 90% with aspect ratio in [3, 4] fits a square image,
    # so torchvision falls back to the whole width, height = round(width / 3).
    images = _images(channels=1)
    layer = RandomResizedCrop(8, scale=(0.9, 1.0), ratio=(3.0, 4.0))
    boxes = _numpy(layer.get_random_transformation(images)["boxes"])
    np.testing.assert_array_equal(boxes, np.tile([[5, 0, 5, 16]], (8, 1)))


def test_resampling_matches_cropping_then_bilinear_resizing():
    images = _images()
    boxes = np.array(
        [
            [0, 0, 16, 16],
            [3, 5, 7, 11],
            [10, 2, 6, 4],
            [0, 0, 1, 1],
            [15, 15, 1, 1],
            [2, 0, 14, 9],
            [0, 7, 16, 9],
            [4, 4, 8, 8],
        ],
        "float32",
    )
    for size in [(16, 16), (8, 12)]:
        layer = RandomResizedCrop(size)
        out = _numpy(
            layer.transform_images(
                keras.ops.convert_to_tensor(images), {"boxes": keras.ops.convert_to_tensor(boxes)}
            )
        )
        for i in range(len(images)):
            expected = _reference_crop_resize(images[i], boxes[i], size)
            np.testing.assert_allclose(out[i], expected, atol=1e-5)


def test_the_whole_image_at_its_own_size_is_returned_unchanged():
    images = _images()
    layer = RandomResizedCrop(16)
    boxes = keras.ops.convert_to_tensor(np.array([[0, 0, 16, 16]] * 8, "float32"))
    out = _numpy(layer.transform_images(keras.ops.convert_to_tensor(images), {"boxes": boxes}))
    np.testing.assert_allclose(out, images, atol=1e-6)


def test_inference_takes_the_central_crop_with_the_output_aspect_ratio():
    images = _images()
    out = _numpy(RandomResizedCrop((8, 12))(images, training=False))
    # Aspect 12/8 in a 16x16 image: the full width, round(16 / 1.5) = 11 rows.
    expected = _reference_crop_resize(images[1], (2, 0, 11, 16), (8, 12))
    np.testing.assert_allclose(out[1], expected, atol=1e-5)


def test_single_unbatched_image():
    out = _numpy(RandomResizedCrop(8)(_images()[0]))
    assert out.shape == (8, 8, 3)


def test_inside_tf_data_each_image_gets_its_own_box():
    images = np.repeat(np.random.rand(1, 16, 16, 3).astype("float32"), 8, axis=0)
    out = _in_tf_data(RandomResizedCrop(8, seed=1), images)
    assert out.shape == (8, 8, 8, 3)
    assert all(not np.allclose(out[0], out[i]) for i in range(1, 8))


def test_inside_tf_data_with_an_unknown_batch_size():
    images = np.random.rand(5, 16, 16, 1).astype("float32")
    out = _in_tf_data(RandomResizedCrop(8), images, batch_size=2)  # last batch of 1
    assert out.shape == (5, 8, 8, 1)


def test_config_round_trip():
    layer = RandomResizedCrop((24, 32), scale=(0.2, 1.0), ratio=(0.5, 2.0), seed=7, name="crop")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, RandomResizedCrop)
    assert clone.get_config() == layer.get_config()
    assert clone.size == (24, 32) and clone.scale == (0.2, 1.0) and clone.seed == 7


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=0), "`size`"),
        (dict(size=(8, 8, 8)), "`size`"),
        (dict(size=32.7), r"`size` must be a positive int or a pair .* Received: size=32\.7"),
        (dict(size=True), "`size`"),
        (dict(size=8, scale=(0.5, 0.1)), "`scale`"),
        (dict(size=8, scale=(0.1, 1.5)), "`scale`"),
        (dict(size=8, ratio=(0.0, 1.0)), "`ratio`"),
    ],
)
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomResizedCrop(**kwargs)
