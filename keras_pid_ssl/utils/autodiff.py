"""Gradient of a scalar function, for diagnostics inside a training step.

`keras.ops` has no `grad`; this is the one place that dispatches on the
backend. It is used for metrics only (e.g. the ratio of the PID terms'
gradient norm to the base loss's), never for the training gradients, which
the stock Keras trainers compute.
"""

import keras
from keras import ops


def gradient(fn, x):
    """The gradient of the scalar `fn(x)` with respect to the tensor `x`."""
    x = ops.convert_to_tensor(x)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return tape.gradient(y, x)
    if backend == "jax":
        import jax

        return jax.grad(fn)(x)
    if backend == "torch":
        import torch

        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(fn(x), x)
        return grad.detach()
    raise NotImplementedError(f"No gradient helper for the {backend!r} backend.")
