"""Deterministic ops: pipelines log no TensorFlow rewrite errors
(`use_unbounded_threadpool`), and KerasCV layers can still be built."""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tensorflow")

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import keras_pid_ssl as kps
    from keras_pid_ssl.utils import determinism

    assert determinism.map_parallel_calls() is not None  # AUTOTUNE
    kps.training.make_deterministic(seed=7)
    assert determinism.map_parallel_calls() is None
    # TensorFlow's global generator, which op determinism refuses to create
    # unseeded and KerasCV layers take when built, is seeded with `seed`.
    import keras_cv
    import tensorflow as tf

    keras_cv.layers.RandomFlip("horizontal")
    draws = tf.random.get_global_generator().uniform((4,)).numpy()
    np.testing.assert_array_equal(draws, tf.random.Generator.from_seed(7).uniform((4,)).numpy())
    images = np.random.default_rng(0).integers(0, 256, (32, 28, 28, 1), np.uint8)
    labels = np.arange(32) % 10
    for dataset in (
        kps.data.ssl_dataset(images, views="pid", augment="grayscale", batch_size=8, seed=0),
        kps.data.labeled_dataset(images, labels, batch_size=8, augment="crop_flip", seed=0),
    ):
        for _ in zip(range(2), dataset):
            pass
    print("pipelines ran")
    """
)


def test_deterministic_pipelines_log_no_rewrite_errors():
    # TensorFlow's op determinism rewrites a parallel map into a sequential
    # one and logs `E0000 ... use_unbounded_threadpool` (C++ logging: only a
    # subprocess's stderr shows it). The pipelines map sequentially then.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pipelines ran" in result.stdout
    assert "use_unbounded_threadpool" not in result.stderr
