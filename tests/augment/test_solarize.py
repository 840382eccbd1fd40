"""Solarize: x < threshold ? x : high + low - x."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pid_ssl.augment import Solarize


def test_matches_numpy_on_unit_range_images():
    images = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(Solarize()(images))
    np.testing.assert_allclose(out, np.where(images < 0.5, images, 1.0 - images), atol=1e-7)


def test_threshold_is_a_fraction_of_the_value_range():
    images = np.arange(256, dtype="float32").reshape(1, 16, 16, 1)
    out = keras.ops.convert_to_numpy(Solarize(threshold=0.25, value_range=(0, 255))(images))
    np.testing.assert_allclose(out, np.where(images < 63.75, images, 255.0 - images))


def test_inside_tf_data():
    images = np.random.default_rng(1).uniform(size=(4, 8, 8, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4).map(Solarize())
    np.testing.assert_allclose(
        next(iter(dataset)).numpy(), np.where(images < 0.5, images, 1 - images)
    )


def test_config_round_trip():
    layer = Solarize(threshold=0.4, value_range=(0, 255))
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert clone.threshold == 0.4 and clone.value_range == (0.0, 255.0)


@pytest.mark.parametrize("threshold", [-0.1, 1.1])
def test_threshold_out_of_range_is_named(threshold):
    with pytest.raises(ValueError, match="`threshold`"):
        Solarize(threshold=threshold)
