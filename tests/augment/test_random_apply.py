"""RandomApply: an independent decision per image, any shape-keeping layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pid_ssl.augment import RandomApply
from keras_pid_ssl.augment import RandomResizedCrop
from keras_pid_ssl.augment import Solarize


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=64, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels)).astype("float32")


def _solarized(images):
    return np.where(images < 0.5, images, 1.0 - images)


def _applied_mask(images, out):
    """Per image: True if solarized, False if untouched (asserts one of the two)."""
    solarized = np.all(np.isclose(out, _solarized(images), atol=1e-6), axis=(1, 2, 3))
    untouched = np.all(np.isclose(out, images, atol=1e-6), axis=(1, 2, 3))
    assert np.all(solarized | untouched)
    return solarized


def test_rate_zero_is_the_identity_and_rate_one_always_applies():
    images = _images()
    np.testing.assert_allclose(_numpy(RandomApply(Solarize(), 0.0)(images)), images)
    np.testing.assert_allclose(
        _numpy(RandomApply(Solarize(), 1.0)(images)), _solarized(images), atol=1e-6
    )


def test_each_image_is_decided_independently_at_the_given_rate():
    images = _images(n=400)
    layer = RandomApply(Solarize(), 0.3, seed=5)
    applied = _applied_mask(images, _numpy(layer(images)))
    # Binomial(400, 0.3): mean 120, sd 9.2; 5 sd either side.
    assert 74 <= applied.sum() <= 166


def test_the_decision_is_drawn_in_get_random_transformation():
    images = _images(n=32)
    layer = RandomApply(Solarize(), 0.5, seed=1)
    transformation = layer.get_random_transformation(images)
    out = _numpy(layer.transform_images(keras.ops.convert_to_tensor(images), transformation))
    np.testing.assert_array_equal(_applied_mask(images, out), _numpy(transformation["apply"]))


def test_inference_leaves_images_unchanged():
    images = _images()
    np.testing.assert_allclose(_numpy(RandomApply(Solarize(), 1.0)(images, training=False)), images)


def test_inside_tf_data_decisions_are_per_image():
    images = _images(n=64)
    layer = RandomApply(Solarize(), 0.5, seed=2)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(64).map(lambda b: layer(b))
    applied = _applied_mask(images, next(iter(dataset)).numpy())
    assert 0 < applied.sum() < 64


def test_wraps_keras_core_layers():
    images = _images(n=32)
    layer = RandomApply(keras.layers.RandomGrayscale(factor=1.0), 0.5, seed=4)
    out = _numpy(layer(images))
    gray = images @ np.array([0.2989, 0.587, 0.114], "float32")
    is_gray = np.all(np.isclose(out, gray[..., None], atol=1e-3), axis=(1, 2, 3))
    untouched = np.all(np.isclose(out, images, atol=1e-6), axis=(1, 2, 3))
    assert np.all(is_gray | untouched) and 0 < is_gray.sum() < 32


def test_a_layer_that_changes_the_shape_is_refused():
    with pytest.raises(ValueError, match="keeps the image shape"):
        RandomApply(RandomResizedCrop(8), 0.5)(_images(n=8, size=16))


def test_a_non_layer_is_refused():
    with pytest.raises(ValueError, match="`layer` must be a Keras layer"):
        RandomApply(lambda x: x, 0.5)


@pytest.mark.parametrize("rate", [-0.1, 1.5, "half"])
def test_rate_must_be_a_probability(rate):
    with pytest.raises(ValueError, match="`rate`"):
        RandomApply(Solarize(), rate)


def test_config_round_trip_keeps_the_wrapped_layer():
    layer = RandomApply(Solarize(threshold=0.3), 0.2, seed=9)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone.layer, Solarize) and clone.layer.threshold == 0.3
    assert clone.rate == 0.2 and clone.seed == 9
