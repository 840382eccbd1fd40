"""`pretrain` turns on TensorFlow's op determinism, process-wide (`deterministic=True`).

Turned off again after each test here, so that later tests in the same
process (e.g. KerasCV layers, which draw from TensorFlow's global generator)
run as they would alone.
"""

import importlib.util

import pytest


@pytest.fixture(autouse=True)
def _op_determinism_off_afterwards():
    yield
    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        tf.config.experimental.disable_op_determinism()
