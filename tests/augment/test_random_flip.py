"""RandomFlip: each image flipped or not, at rate one half, keyed like the other layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pid_ssl.augment.base import key_scope
from keras_pid_ssl.augment.random_flip import RandomFlip


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=64, size=6, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels)).astype("float32")


def _flipped_mask(images, out, axis):
    """Per image: True if flipped along `axis`, False if untouched (asserts one of the two)."""
    flipped = np.all(np.isclose(out, np.flip(images, axis=axis)), axis=(1, 2, 3))
    untouched = np.all(np.isclose(out, images), axis=(1, 2, 3))
    assert np.all(flipped | untouched) and not np.any(flipped & untouched)
    return flipped


@pytest.mark.parametrize("mode, axis", [("horizontal", 2), ("vertical", 1)])
def test_each_image_is_flipped_or_kept_at_rate_one_half(mode, axis):
    images = _images(n=400)
    flipped = _flipped_mask(images, _numpy(RandomFlip(mode, seed=3)(images)), axis)
    # Binomial(400, 1/2): mean 200, sd 10.
    assert 160 < flipped.sum() < 240


def test_both_axes_are_drawn_independently():
    images = _images(n=400)
    out = _numpy(RandomFlip("horizontal_and_vertical", seed=5)(images))
    kinds = {
        "none": images,
        "h": np.flip(images, 2),
        "v": np.flip(images, 1),
        "hv": np.flip(np.flip(images, 1), 2),
    }
    counts = {
        k: int(np.all(np.isclose(out, ref), axis=(1, 2, 3)).sum()) for k, ref in kinds.items()
    }
    assert sum(counts.values()) == 400
    assert all(60 < c < 140 for c in counts.values()), counts  # each 1/4: mean 100, sd ~8.7


def test_inference_and_a_single_image():
    images = _images(n=4)
    np.testing.assert_array_equal(_numpy(RandomFlip(seed=0)(images, training=False)), images)
    image = images[0]
    out = _numpy(RandomFlip(seed=0)(image))
    assert out.shape == image.shape
    assert np.allclose(out, image) or np.allclose(out, image[:, ::-1])


def test_keyed_draws_repeat_and_differ_by_key():
    images = _images(n=64)
    layer = RandomFlip(seed=0)
    outs = []
    for key in ([1, 2], [1, 2], [1, 3]):
        with key_scope(np.array(key, "int32")):
            outs.append(_flipped_mask(images, _numpy(layer(images)), 2))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_inside_tf_data_keyed_by_the_batch_key():
    images = _images(n=32)
    layer = RandomFlip(seed=0)

    def augment(batch, key):
        with key_scope(key):
            return layer(batch)

    keys = tf.constant([[7, 1], [7, 1], [7, 2]], tf.int64)
    batches = tf.data.Dataset.from_tensors(images).repeat(3)
    dataset = tf.data.Dataset.zip(batches, tf.data.Dataset.from_tensor_slices(keys))
    first, again, other = [_flipped_mask(images, b.numpy(), 2) for b in dataset.map(augment)]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and 0 < first.sum() < 32


def test_bad_mode_is_named_and_config_round_trips():
    with pytest.raises(ValueError, match="mode"):
        RandomFlip("diagonal")
    layer = RandomFlip("vertical", seed=4, name="flip")
    clone = RandomFlip.from_config(layer.get_config())
    assert (clone.mode, clone.seed, clone.name) == ("vertical", 4, "flip")
