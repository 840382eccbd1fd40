"""RandomGrayscale: luma in every channel with probability `factor`, per image."""

import keras
import numpy as np
import pytest

from keras_pid_ssl.augment.random_grayscale import RandomGrayscale

LUMA = np.array([0.2989, 0.587, 0.114], "float32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=64, size=4, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels)).astype("float32")


def _gray_mask(images, out):
    gray = np.repeat((images @ LUMA)[..., None], images.shape[-1], axis=-1)
    is_gray = np.all(np.isclose(out, gray, atol=1e-6), axis=(1, 2, 3))
    untouched = np.all(np.isclose(out, images, atol=1e-6), axis=(1, 2, 3))
    assert np.all(is_gray | untouched) and not np.any(is_gray & untouched)
    return is_gray


def test_factor_one_gives_torchvision_luma_in_every_channel():
    images = _images(n=8)
    assert _gray_mask(images, _numpy(RandomGrayscale(1.0)(images))).all()


def test_each_image_is_turned_grey_at_rate_factor():
    images = _images(n=500)
    is_gray = _gray_mask(images, _numpy(RandomGrayscale(0.2, seed=1)(images)))
    # Binomial(500, 0.2): mean 100, sd ~8.9.
    assert 65 < is_gray.sum() < 135


def test_factor_zero_inference_and_one_channel_are_the_identity():
    images = _images(n=8)
    np.testing.assert_array_equal(_numpy(RandomGrayscale(0.0)(images)), images)
    np.testing.assert_array_equal(_numpy(RandomGrayscale(1.0)(images, training=False)), images)
    grey = _images(n=8, channels=1)
    np.testing.assert_array_equal(_numpy(RandomGrayscale(1.0)(grey)), grey)


@pytest.mark.parametrize("factor", [-0.1, 1.5, "a"])
def test_factor_must_be_a_probability(factor):
    with pytest.raises(ValueError, match="factor"):
        RandomGrayscale(factor)


def test_config_round_trip():
    layer = RandomGrayscale(0.3, seed=2)
    clone = RandomGrayscale.from_config(layer.get_config())
    assert (clone.factor, clone.seed) == (0.3, 2)
