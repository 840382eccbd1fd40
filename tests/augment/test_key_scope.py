"""Keyed, stateless augmentation on public Keras API only.

`key_scope(key)` makes every draw of this package's layers a function of the
key; inside `tf.data` the layers run on `TENSORFLOW_OPS` under every backend,
which must compute what `keras.ops` computes, so that the same seed gives the
same batches on every backend.
"""

import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_pid_ssl
from keras_pid_ssl.augment import ColorJitter
from keras_pid_ssl.augment import GaussianBlur
from keras_pid_ssl.augment import RandomApply
from keras_pid_ssl.augment import RandomResizedCrop
from keras_pid_ssl.augment import Solarize
from keras_pid_ssl.augment.base import KERAS_OPS
from keras_pid_ssl.augment.base import TENSORFLOW_OPS
from keras_pid_ssl.augment.base import FixedSeed
from keras_pid_ssl.augment.base import key_scope
from keras_pid_ssl.augment.random_flip import RandomFlip
from keras_pid_ssl.augment.random_grayscale import RandomGrayscale
from keras_pid_ssl.augment.views import build_view

PACKAGE = pathlib.Path(keras_pid_ssl.__file__).parent


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=16, size=12, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels)).astype("float32")


def _pipeline(size=8, seed=0):
    """A preset-like view, built (a Pipeline's first call traces its steps,
    which draws too: build it before keying its calls)."""
    pipeline = keras.layers.Pipeline(
        [
            RandomResizedCrop(size, seed=seed + 1),
            RandomFlip("horizontal", seed=seed + 2),
            RandomApply(ColorJitter(0.4, 0.4, 0.2, 0.1, seed=seed + 3), 0.8, seed=seed + 4),
            RandomGrayscale(0.2, seed=seed + 5),
            RandomApply(GaussianBlur(3, seed=seed + 6), 0.5, seed=seed + 7),
            RandomApply(Solarize(), 0.2, seed=seed + 8),
        ]
    )
    build_view(pipeline, (None, 12, 12, 3))
    return pipeline


def test_the_package_uses_no_private_keras_api():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"\s*(from|import)\s+keras\.src\b", line) or "_get_seed_generator" in line:
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []


def test_same_key_same_views_other_key_other_views():
    images = _images()
    pipeline = _pipeline()
    outs = []
    for key in ([3, 0], [3, 0], [4, 0]):
        with key_scope(np.array(key, "int32")):
            outs.append(_numpy(pipeline(images)))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.allclose(outs[0], outs[2])
    # Each image its own parameters.
    with key_scope(np.array([3, 0], "int32")):
        same = _numpy(pipeline(np.repeat(images[:1], 8, axis=0))).reshape(8, -1)
    assert len(np.unique(same, axis=0)) == 8


def test_the_draws_of_one_transformation_are_distinct_streams():
    # One explicit key for the whole transformation: each draw must fold in
    # its own number, or brightness and contrast factors would be equal.
    images = _images(n=64, size=2)
    layer = ColorJitter(0.4, 0.4, 0.4, 0.1, random_order=False)
    t = layer.get_random_transformation(images, seed=np.array([5, 6], "int32"))
    again = layer.get_random_transformation(images, seed=np.array([5, 6], "int32"))
    b, c, s = (_numpy(t[n]) for n in ("brightness", "contrast", "saturation"))
    np.testing.assert_array_equal(b, _numpy(again["brightness"]))
    assert not np.allclose(b, c) and not np.allclose(c, s)
    # The same holds for an integer seed.
    t = layer.get_random_transformation(images, seed=9)
    assert not np.allclose(_numpy(t["brightness"]), _numpy(t["contrast"]))


def test_unkeyed_layers_advance_their_generator():
    images = _images()
    layer = RandomResizedCrop(8, seed=1)
    first, second = _numpy(layer(images)), _numpy(layer(images))
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(_numpy(RandomResizedCrop(8, seed=1)(images)), first)


def test_in_tf_data_the_batch_key_decides_and_unkeyed_layers_follow_their_seed():
    images = _images()
    pipeline = _pipeline()

    def keyed(batch, key):
        with key_scope(key):
            return pipeline(batch)

    keys = tf.constant([[1, 2], [1, 3], [1, 2]], tf.int64)
    batches = tf.data.Dataset.from_tensors(images).repeat(3)
    dataset = tf.data.Dataset.zip(batches, tf.data.Dataset.from_tensor_slices(keys))
    first, other, again = [b.numpy() for b in dataset.map(keyed, num_parallel_calls=3)]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other) and first.shape == (16, 8, 8, 3)

    def unkeyed(seed):
        layer = _pipeline(seed=seed)
        return [b.numpy() for b in batches.map(lambda b: layer(b))]

    one, same, two = unkeyed(0), unkeyed(0), unkeyed(10)
    np.testing.assert_array_equal(one[0], same[0])
    assert not np.allclose(one[0], one[1]) and not np.allclose(one[0], two[0])


def test_tensorflow_ops_compute_what_keras_ops_compute():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 5, 4, 2)).astype("float32")
    ties = np.array([[0.5, 0.1, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2]], "float32")
    mask = np.array([True, False, True, True])
    rgb = rng.uniform(size=(2, 3, 3, 3)).astype("float32")
    cases = [
        ("numpy.argsort", (ties,), dict(axis=1)),
        ("numpy.pad", (x, [[0, 0], [2, 2], [0, 0], [0, 0]]), dict(mode="reflect")),
        ("numpy.arange", (-2, 3), dict(dtype="float32")),
        ("numpy.arange", (4,), {}),
        ("numpy.argmax", (ties,), dict(axis=1)),
        ("numpy.mean", (x,), dict(axis=(1, 2, 3), keepdims=True)),
        ("numpy.sum", (x,), dict(axis=-1, keepdims=True)),
        ("numpy.max", (x,), dict(axis=1)),
        ("numpy.round", (x * 7,), {}),
        ("numpy.take", (x, np.array([2, 0])), dict(axis=0)),
        ("numpy.tile", (x[:1, :1], [2, 1, 3, 1]), {}),
        ("numpy.flip", (x,), dict(axis=2)),
        ("numpy.clip", (x, 0.2, 0.7), {}),
        ("numpy.ones_like", (x,), dict(dtype="bool")),
        ("image.rgb_to_hsv", (rgb,), {}),
        ("image.hsv_to_rgb", (rgb,), {}),
        ("core.scatter_update", (x, np.array([[2], [0]]), x[:2] + 1.0), {}),
        ("nn.one_hot", (np.array([0, 3, 1]), 4), dict(dtype="float32")),
    ]
    for name, args, kwargs in cases:
        group, op = name.split(".")
        ours = getattr(getattr(TENSORFLOW_OPS, group), op)(*args, **kwargs)
        reference = getattr(getattr(KERAS_OPS, group), op)(*args, **kwargs)
        np.testing.assert_allclose(
            np.asarray(ours), _numpy(reference), rtol=1e-6, atol=1e-6, err_msg=name
        )
    (index,) = TENSORFLOW_OPS.numpy.nonzero(mask)
    np.testing.assert_array_equal(np.asarray(index), np.nonzero(mask)[0])

    @tf.function(input_signature=[tf.TensorSpec((None, 5, 4, 2))])
    def dynamic_shape(images):
        batch, height, width, channels = TENSORFLOW_OPS.shape(images)
        assert (height, width, channels) == (5, 4, 2) and tf.is_tensor(batch)
        return batch

    assert int(dynamic_shape(x)) == 3


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="keras.ops are TF ops here")
def test_keyed_draws_match_keras_tensorflow_backend_draws():
    key = tf.constant([123456789012, 7], tf.int64)
    for draw in range(1, 4):
        ours = TENSORFLOW_OPS.random.uniform((5,), 0.2, 0.9, seed=TENSORFLOW_OPS.fold_in(key, draw))
        theirs = keras.random.uniform((5,), 0.2, 0.9, seed=FixedSeed(KERAS_OPS.fold_in(key, draw)))
        np.testing.assert_array_equal(ours.numpy(), _numpy(theirs))


CROSS_BACKEND = """
import sys
import keras
import numpy as np
import keras_pid_ssl as kps
from keras_pid_ssl.augment.random_flip import RandomFlip
from keras_pid_ssl.augment.random_grayscale import RandomGrayscale

def pipeline(seed):
    a = kps.augment
    return keras.layers.Pipeline([
        a.RandomResizedCrop(8, seed=seed), RandomFlip(seed=seed + 1),
        a.RandomApply(a.ColorJitter(0.4, 0.4, 0.2, 0.1, seed=seed + 2), 0.8, seed=seed + 3),
        RandomGrayscale(0.2, seed=seed + 4),
        a.RandomApply(a.GaussianBlur(3, seed=seed + 5), 0.5, seed=seed + 6),
        a.RandomApply(a.Solarize(), 0.2, seed=seed + 7)])

images = np.random.default_rng(0).integers(0, 256, (24, 12, 12, 3), dtype=np.uint8)
views = kps.augment.Views(pipeline(0), pipeline(10))
dataset = kps.data.ssl_dataset(images, augment=views, batch_size=8, seed=4)
for _ in range(2):  # passes 0 and 1
    out = [np.stack([b["view1"], b["view2"]]) for b in dataset]
np.save(sys.argv[1], np.stack(out))
"""


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="runs the other backends once, from TF"
)
def test_same_seed_same_batches_on_every_backend(tmp_path):
    results = {}
    for backend in ("tensorflow", "jax", "torch"):
        path = tmp_path / f"{backend}.npy"
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run(
            [sys.executable, "-c", CROSS_BACKEND, str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if f"No module named '{backend}'" in done.stderr:
            pytest.skip(f"{backend} is not installed: the cross-backend comparison needs it")
        assert done.returncode == 0, done.stderr[-3000:]
        results[backend] = np.load(path)
    reference = results.pop("tensorflow")
    assert reference.shape == (3, 2, 8, 8, 8, 3)
    for backend, result in results.items():
        np.testing.assert_allclose(result, reference, atol=1e-5, err_msg=backend)
