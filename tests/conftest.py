"""Test configuration: the backend comes from KERAS_BACKEND (tensorflow, jax, torch).

Run the suite once per backend, in separate processes:
`bash tools/test_all_backends.sh` (what CI runs).
"""

import os

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
requires_jax = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="JAX-backend feature"
)


def make_views(n=32, size=8, channels=1, num_views=2, seed=0):
    """Tiny structured images and noisy views of them, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(size=(n, size, size, channels)).astype("float32")
    views = [
        np.clip(base + 0.1 * rng.normal(size=base.shape), 0, 1).astype("float32")
        for _ in range(2)
    ]
    if num_views == 3:
        views.append(base)
    return tuple(views)


def tiny_encoder(size=8, channels=1):
    import keras_pid_ssl as kps

    return kps.backbones.SmallConvNet(input_shape=(size, size, channels), widths=(4, 8))


def tiny_projector():
    import keras_pid_ssl as kps

    return kps.heads.Projector(hidden_dims=(16,), output_dim=8)
