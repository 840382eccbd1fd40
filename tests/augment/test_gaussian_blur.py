"""GaussianBlur: a separable Gaussian with reflected borders and its own sigma per image."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from keras_pid_ssl.augment import GaussianBlur


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _reference(image, sigma, kernel_size):
    """scipy's correlate1d with "mirror" borders (= numpy / torch "reflect")."""
    radius = kernel_size // 2
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (x / sigma) ** 2)
    weights /= weights.sum()
    out = ndimage.correlate1d(image.astype(np.float64), weights, axis=0, mode="mirror")
    return ndimage.correlate1d(out, weights, axis=1, mode="mirror")


# Eager tests share the shape (8, 16, 16, 3): JAX compiles every primitive once
# per shape.
def _images(seed=0):
    return np.random.default_rng(seed).uniform(size=(8, 16, 16, 3)).astype("float32")


def test_matches_scipy_with_each_images_sigma():
    images = _images()
    sigma = np.array([0.3, 1.0, 2.0, 0.1, 0.5, 1.5, 0.8, 1.2], "float32")
    layer = GaussianBlur(kernel_size=5)
    out = _numpy(
        layer.transform_images(
            keras.ops.convert_to_tensor(images), {"sigma": keras.ops.convert_to_tensor(sigma)}
        )
    )
    for i in range(8):
        np.testing.assert_allclose(out[i], _reference(images[i], sigma[i], 5), atol=1e-5)


def test_sigma_is_drawn_per_image_in_range():
    images = np.zeros((100, 8, 8, 1), "float32")
    sigma = _numpy(
        GaussianBlur(sigma=(0.1, 2.0), seed=1).get_random_transformation(images)["sigma"]
    )
    assert sigma.shape == (100,) and sigma.min() >= 0.1 and sigma.max() <= 2.0
    assert len(np.unique(sigma)) == 100


def test_identical_images_are_blurred_differently():
    images = np.repeat(_images()[:1], 8, axis=0)
    out = _numpy(GaussianBlur(kernel_size=5, sigma=(0.5, 2.0), seed=3)(images))
    assert all(not np.allclose(out[0], out[i]) for i in range(1, 8))


def test_a_constant_image_stays_constant():
    images = np.full((8, 16, 16, 3), 0.3, "float32")
    np.testing.assert_allclose(_numpy(GaussianBlur(kernel_size=5)(images)), images, atol=1e-6)


@pytest.mark.parametrize("side, expected", [(224, 23), (96, 9), (32, 3), (8, 3)])
def test_default_kernel_is_a_tenth_of_the_side_and_odd(side, expected):
    assert GaussianBlur().kernel_size_for(side, side) == expected


def test_inside_tf_data():
    images = np.random.default_rng(4).uniform(size=(4, 12, 12, 3)).astype("float32")
    dataset = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(4)
        .map(GaussianBlur(kernel_size=5, sigma=1.0))
    )
    out = next(iter(dataset)).numpy()
    np.testing.assert_allclose(out[0], _reference(images[0], 1.0, 5), atol=1e-5)


def test_kernel_larger_than_the_image_is_refused():
    with pytest.raises(ValueError, match="too large"):
        GaussianBlur(kernel_size=9)(np.zeros((1, 4, 4, 1), "float32"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kernel_size=4), "`kernel_size`"),
        (dict(sigma=(2.0, 1.0)), "`sigma`"),
        (dict(sigma=0), "`sigma`"),
    ],
)
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianBlur(**kwargs)


def test_config_round_trip():
    layer = GaussianBlur(kernel_size=9, sigma=(0.5, 1.5), seed=2)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.kernel_size == 9 and clone.sigma == (0.5, 1.5) and clone.seed == 2
