"""Deterministic ops, process-wide (`make_deterministic`), and whether they are on."""

import keras

_ENABLED = False


def make_deterministic(seed=0):
    """Makes training ops deterministic, as far as each backend allows.

    TensorFlow: `tf.config.experimental.enable_op_determinism()` (every op
    deterministic or an error; also covers the `tf.data` pipeline on every
    backend), and TensorFlow's global `tf.random.Generator` seeded with
    `seed`: op determinism refuses to create it unseeded, and KerasCV's
    layers draw from it when they are built. PyTorch:
    `torch.use_deterministic_algorithms(True, warn_only=True)`. JAX: XLA is
    deterministic on CPU; on GPU set `XLA_FLAGS=--xla_gpu_deterministic_ops=true`
    before starting Python.
    The setting is process-wide. With a fixed seed, `pretrain` on the
    TensorFlow backend on a CPU then repeats its loss history exactly (tested).
    Without TensorFlow installed (no `tf.data` either) only the backend's
    setting applies.
    """
    global _ENABLED
    from keras_pid_ssl.config import tensorflow_installed

    if tensorflow_installed():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        tf.random.set_global_generator(tf.random.Generator.from_seed(seed))
    if keras.backend.backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
    _ENABLED = True


def map_parallel_calls():
    """`num_parallel_calls` for the `tf.data` maps: `tf.data.AUTOTUNE`, or
    `None` (a sequential map) after `make_deterministic`.

    TensorFlow's op determinism runs these maps sequentially anyway; its
    rewrite of a parallel map also logs an `E0000 ... NodeDef mentions
    attribute use_unbounded_threadpool` line (TensorFlow 2.21), which a
    sequential map does not.
    """
    import tensorflow as tf

    return None if _ENABLED else tf.data.AUTOTUNE
