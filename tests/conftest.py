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
