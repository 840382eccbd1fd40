"""KerasCV layers as drop-in steps (the optional `keras-cv` extra).

KerasCV 0.9 (the last release, frozen) computes with TensorFlow ops and
converts to and from the active backend's tensors, so with Keras 3.15 its
preprocessing layers work inside `tf.data` and eagerly on every backend.
"""

import keras
import keras_cv  # in the test extra (`pip install -e ".[dev]"`), so CI runs these tests
import numpy as np
import tensorflow as tf

from keras_pid_ssl import augment


def _images(n=16, size=16):
    return np.random.default_rng(0).uniform(size=(n, size, size, 3)).astype("float32")


def _tf_data(layer, images):
    return next(
        iter(tf.data.Dataset.from_tensor_slices(images).batch(len(images)).map(layer))
    ).numpy()


def test_a_keras_cv_layer_inside_random_apply_keeps_per_image_decisions():
    images = _images()
    layer = augment.RandomApply(keras_cv.layers.Grayscale(output_channels=3), 0.5, seed=1)
    out = _tf_data(layer, images)
    gray = tf.image.rgb_to_grayscale(images).numpy()
    is_gray = np.all(np.isclose(out, gray, atol=1e-5), axis=(1, 2, 3))
    untouched = np.all(np.isclose(out, images, atol=1e-6), axis=(1, 2, 3))
    assert np.all(is_gray | untouched) and 0 < is_gray.sum() < len(images)


def test_keras_cv_layers_mix_with_ours_in_a_pipeline_inside_tf_data():
    pipeline = keras.layers.Pipeline(
        [
            augment.RandomResizedCrop(12),
            augment.RandomApply(
                keras_cv.layers.RandomColorJitter(
                    value_range=(0, 1),
                    brightness_factor=0.2,
                    contrast_factor=0.2,
                    saturation_factor=(0.4, 0.6),
                    hue_factor=0.1,
                ),
                0.8,
            ),
            keras_cv.layers.RandomFlip("horizontal"),
            augment.RandomApply(augment.Solarize(), 0.2),
        ]
    )
    images = np.repeat(_images(n=1), 8, axis=0)
    out = _tf_data(pipeline, images)
    assert out.shape == (8, 12, 12, 3) and out.min() >= 0.0 and out.max() <= 1.0
    assert all(not np.allclose(out[0], out[i]) for i in range(1, 8))


def test_keras_cv_step_eagerly_on_the_active_backend():
    layer = augment.RandomApply(keras_cv.layers.Grayscale(output_channels=3), 1.0)
    out = keras.ops.convert_to_numpy(layer(_images()))
    np.testing.assert_allclose(
        out, tf.image.rgb_to_grayscale(_images()).numpy() * np.ones(3), atol=1e-5
    )
