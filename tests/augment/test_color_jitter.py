"""ColorJitter: torchvision's operations, per-image factors, per-image order."""

import colorsys
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pid_ssl.augment import ColorJitter

NAMES = ("brightness", "contrast", "saturation", "hue")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


# Eager tests share the shape (8, 8, 8, channels): JAX compiles every primitive
# once per shape.
def _images(n=8, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels)).astype("float32")


# Independent NumPy reference of torchvision.transforms.functional's adjust_*.
def _gray(image):
    if image.shape[-1] == 1:
        return image
    return (image @ np.array([0.2989, 0.587, 0.114]))[..., None]


def _reference(name, image, factor):
    image = image.astype(np.float64)
    if name == "brightness":
        return np.clip(image * factor, 0, 1)
    if name == "contrast":
        return np.clip(factor * image + (1 - factor) * _gray(image).mean(), 0, 1)
    if name == "saturation":
        return np.clip(factor * image + (1 - factor) * _gray(image), 0, 1)
    out = np.empty_like(image)
    for i, j in itertools.product(range(image.shape[0]), range(image.shape[1])):
        h, s, v = colorsys.rgb_to_hsv(*image[i, j])
        out[i, j] = colorsys.hsv_to_rgb((h + factor) % 1.0, s, v)
    return out


def _transformation(images, factors, order=None):
    t = {name: keras.ops.convert_to_tensor(np.asarray(factors[name], "float32")) for name in NAMES}
    if order is not None:
        t["order"] = keras.ops.convert_to_tensor(np.asarray(order, "int32"))
    return t


def _factors(n):
    rng = np.random.default_rng(1)
    return dict(
        brightness=rng.uniform(0.6, 1.4, n),
        contrast=rng.uniform(0.6, 1.4, n),
        saturation=rng.uniform(0.8, 1.2, n),
        hue=rng.uniform(-0.1, 0.1, n),
    )


@pytest.mark.parametrize("name", NAMES)
def test_each_operation_matches_torchvision_semantics(name):
    images = _images()
    factors = _factors(len(images))
    layer = ColorJitter(**{name: 0.3}, random_order=False)
    out = _numpy(
        layer.transform_images(
            keras.ops.convert_to_tensor(images), _transformation(images, factors)
        )
    )
    for i in range(len(images)):
        np.testing.assert_allclose(out[i], _reference(name, images[i], factors[name][i]), atol=2e-5)


def test_fixed_order_is_brightness_contrast_saturation_hue():
    images = _images()
    factors = _factors(len(images))
    layer = ColorJitter(0.4, 0.4, 0.2, 0.1, random_order=False)
    out = _numpy(
        layer.transform_images(
            keras.ops.convert_to_tensor(images), _transformation(images, factors)
        )
    )
    for i in range(len(images)):
        expected = images[i]
        for name in NAMES:
            expected = _reference(name, expected, factors[name][i])
        np.testing.assert_allclose(out[i], expected, atol=5e-5)


def test_random_order_applies_each_image_its_own_order():
    images = _images()
    factors = _factors(len(images))
    # order[i, k] is the step at which operation k runs for image i.
    order = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] * 2)
    layer = ColorJitter(0.4, 0.4, 0.2, 0.1, random_order=True)
    out = _numpy(
        layer.transform_images(
            keras.ops.convert_to_tensor(images), _transformation(images, factors, order)
        )
    )
    for i in range(len(images)):
        expected = images[i]
        for name in sorted(NAMES, key=lambda n: order[i, NAMES.index(n)]):
            expected = _reference(name, expected, factors[name][i])
        np.testing.assert_allclose(out[i], expected, atol=5e-5)


def test_factors_are_drawn_per_image_within_torchvision_ranges():
    images = _images(n=200, size=2)
    t = ColorJitter(0.4, 0.4, 0.2, 0.1, seed=3).get_random_transformation(images)
    bounds = dict(
        brightness=(0.6, 1.4), contrast=(0.6, 1.4), saturation=(0.8, 1.2), hue=(-0.1, 0.1)
    )
    for name, (low, high) in bounds.items():
        values = _numpy(t[name])
        assert values.shape == (200,) and values.min() >= low and values.max() <= high
        assert len(np.unique(values)) == 200
    orders = _numpy(t["order"])
    assert all(sorted(row) == [0, 1, 2, 3] for row in orders)
    assert len({tuple(row) for row in orders}) > 12  # of the 24 permutations


def test_strength_above_one_keeps_factors_non_negative():
    t = ColorJitter(brightness=1.5, seed=0).get_random_transformation(_images(n=200, size=2))
    assert _numpy(t["brightness"]).min() >= 0.0


def test_identical_images_come_out_different():
    images = np.repeat(_images(n=1), 8, axis=0)
    out = _numpy(ColorJitter(0.4, 0.4, 0.2, 0.1, seed=2)(images))
    assert all(not np.allclose(out[0], out[i]) for i in range(1, 8))


def test_grey_images_take_brightness_and_contrast():
    images = _images(channels=1)
    out = _numpy(ColorJitter(brightness=0.4, contrast=0.4)(images))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1


def test_grey_images_with_saturation_or_hue_are_refused():
    with pytest.raises(ValueError, match="3 channels"):
        ColorJitter(saturation=0.2)(_images(channels=1))


def test_value_range_0_255():
    images = _images()
    factors = _factors(len(images))
    layer = ColorJitter(brightness=0.4, random_order=False, value_range=(0, 255))
    t = _transformation(images, factors)
    out = _numpy(layer.transform_images(keras.ops.convert_to_tensor(images * 255), t))
    np.testing.assert_allclose(
        out[0] / 255, _reference("brightness", images[0], factors["brightness"][0]), atol=1e-5
    )


def test_inside_tf_data_images_differ():
    images = np.repeat(_images(n=1), 8, axis=0)
    layer = ColorJitter(0.4, 0.4, 0.2, 0.1)
    out = next(iter(tf.data.Dataset.from_tensor_slices(images).batch(8).map(layer))).numpy()
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert all(not np.allclose(out[0], out[i]) for i in range(1, 8))


def test_config_round_trip():
    layer = ColorJitter(0.4, 0.3, 0.2, 0.1, random_order=False, seed=4)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(brightness=-0.1), "`brightness`"),
        (dict(hue=0.6), r"`hue` must be a number in \[0, 0.5\]"),
        (dict(contrast="strong"), "`contrast`"),
        (dict(value_range=(1, 0)), "value_range"),
    ],
)
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColorJitter(**kwargs)
