"""Test configuration: the backend comes from KERAS_BACKEND (tensorflow, jax, torch).

Run the suite once per backend, in separate processes:
`bash tools/test_all_backends.sh` (what CI runs).
"""

import gzip
import os
import struct

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield


def backend():
    return keras.backend.backend()


requires_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow-backend feature"
)
requires_jax = pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX-backend feature")


def once_per_ci(backend="jax"):
    """Marks a test whose result does not depend on the suite's backend (flag
    parsing, or a subprocess that sets its own `KERAS_BACKEND`): CI runs the
    suite once per backend (tools/test_all_backends.sh), and the test runs in
    the `backend` suite only."""
    return pytest.mark.skipif(
        keras.backend.backend() != backend,
        reason=f"backend-independent: runs once per CI, in the KERAS_BACKEND={backend} suite",
    )


def make_views(n=32, size=8, channels=1, num_views=2, seed=0):
    """Tiny structured images and noisy views of them, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(size=(n, size, size, channels)).astype("float32")
    views = [
        np.clip(base + 0.1 * rng.normal(size=base.shape), 0, 1).astype("float32") for _ in range(2)
    ]
    if num_views == 3:
        views.append(base)
    return tuple(views)


def view_batch(*views, label=None):
    """The dict batch SSL models take: `view_batch(v1, v2[, target][, label=...])`."""
    batch = dict(zip(("view1", "view2", "target"), views, strict=False))
    if label is not None:
        batch["label"] = label
    return batch


def view_dataset(*views, batch_size=16, label=None, drop_remainder=True):
    """A `tf.data.Dataset` of `view_batch` dicts."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(view_batch(*views, label=label)).batch(
        batch_size, drop_remainder=drop_remainder
    )


def tiny_encoder(size=8, channels=1):
    import keras_pid_ssl as kps

    return kps.backbones.SmallConvNet(input_shape=(size, size, channels), widths=(4, 8))


def tiny_projector():
    import keras_pid_ssl as kps

    return kps.heads.Projector(hidden_dims=(16,), output_dim=8)


def uint8_images(n=16, size=16, channels=3, seed=0):
    """Seeded random uint8 images `(n, size, size, channels)`."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def augmenting_model(augment, size=16, channels=3):
    """A tiny Barlow Twins `SSLModel` that draws its views with `augment`."""
    import keras_pid_ssl as kps

    return kps.SSLModel(
        tiny_encoder(size, channels),
        tiny_projector(),
        loss=kps.losses.BarlowTwinsLoss(),
        augment=augment,
    )


@pytest.fixture
def float64_floatx():
    """`keras.config.floatx()` is float64 inside the test."""
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


def write_idx(path, array):
    """Writes `array` (uint8) in the idx format of (Fashion-)MNIST, gzipped."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype("uint8").tobytes())


@pytest.fixture(scope="module")
def tiny_fashion_mnist(tmp_path_factory):
    """A tiny Fashion-MNIST in the real idx format; the class sets which quadrant is bright."""
    import keras_pid_ssl as kps

    folder = tmp_path_factory.mktemp("fashion_mnist")
    rng = np.random.default_rng(0)
    for _split, n, (images_name, labels_name) in [
        ("train", 96, kps.data.fashion_mnist.FILES["train"]),
        ("test", 48, kps.data.fashion_mnist.FILES["test"]),
    ]:
        labels = np.arange(n) % 4
        images = rng.integers(0, 60, size=(n, 12, 12)).astype("uint8")
        for i, label in enumerate(labels):
            r, c = divmod(int(label), 2)
            images[i, 6 * r : 6 * r + 6, 6 * c : 6 * c + 6] += 180
        write_idx(os.path.join(folder, images_name), images)
        write_idx(os.path.join(folder, labels_name), labels)
    return str(folder)
