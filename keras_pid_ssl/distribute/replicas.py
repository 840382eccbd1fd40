"""Global-batch statistics under `tf.distribute`: gather, then rescale.

SSL losses are batch statistics (a cross-correlation, a covariance, the PID
correlations), so under data parallelism they must see the global batch, and
their gradients must be those of one big batch. Under a TF strategy Keras runs
`train_step` once per replica, each on its slice of the batch, and the
optimizer SUMS the replicas' gradients
(`keras/src/backend/tensorflow/optimizer.py`, `_all_reduce_sum_gradients`).
Keras does not rescale a custom `compute_loss`, and its trainer reports
`loss * num_replicas` as the `loss` metric
(`keras.src.losses.loss.unscale_loss_for_distribution`). Hence, on every
replica:

1. `gather_replicas(z)`: all replicas' embeddings, concatenated in replica
   order (`ReplicaContext.all_gather`). It is differentiable: its gradient
   all-reduces (SUMs) the upstream gradient over replicas and keeps the local
   slice.
2. Every replica computes the same loss L on the global batch and returns
   `scale_loss_for_replicas(L) = L / num_replicas`.

The gradient reaching replica r's embeddings is then
`sum_over_replicas(dL/dZ / n)[slice r] = dL/dZ[slice r]`, and the optimizer's
sum over replicas of the parameter gradients is exactly dL/dtheta of one
device on the global batch; the reported `loss` is exactly L. The scaling
covers regularisation losses too (each replica adds the same penalty).

On JAX, `keras.distribution.DataParallel` compiles one global SPMD program
over sharded arrays, so batch statistics are global already and both helpers
are the identity there (and on PyTorch, where Keras has no multi-device
trainer).
"""

import weakref

import keras
from keras import ops

# Tensors this module has gathered, so that gathering is idempotent: a loss
# nested in another (PIDLoss's Barlow Twins / VICReg base) receives the
# parent's already-gathered embeddings and must not gather them again.
_GATHERED = weakref.WeakValueDictionary()


def _multi_replica_context():
    """The TF replica context when running on more than one replica, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        # None: cross-replica context (e.g. building a model in
        # `strategy.scope()`); there is no per-replica batch to gather.
        return None
    return context


def num_replicas_in_sync():
    """The number of replicas whose batches `gather_replicas` concatenates.

    1 outside a multi-replica `tf.distribute` replica context, and on JAX and
    PyTorch.
    """
    context = _multi_replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def _already_gathered(x):
    try:
        return _GATHERED.get(id(x)) is x
    except TypeError:
        return False


def gather_replicas(x):
    """Concatenates `x` over all replicas along axis 0, with gradients.

    Inside a multi-replica `tf.distribute` replica context (a `train_step`
    under `MirroredStrategy`, `MultiWorkerMirroredStrategy` or `TPUStrategy`)
    returns `ReplicaContext.all_gather(x, axis=0)`: the global batch, replica
    0's rows first, identical on every replica. Its gradient sums the upstream
    gradients of all replicas and keeps this replica's rows, so pair it with
    `scale_loss_for_replicas` (see the module docstring). Elsewhere (one
    replica, cross-replica context, JAX, PyTorch) it returns `x` unchanged.
    Gathering a tensor this function returned returns it unchanged, so nested
    losses may call it again.

    Args:
        x: a tensor whose first axis is the (per-replica) batch.

    Returns:
        The global batch, or `x`.

    Example:

    >>> import numpy as np
    >>> z = np.ones((4, 2), "float32")
    >>> tuple(gather_replicas(z).shape)   # one device: the identity
    (4, 2)
    """
    context = _multi_replica_context()
    if context is None or _already_gathered(x):
        return x
    gathered = context.all_gather(x, axis=0)
    _GATHERED[id(gathered)] = gathered
    return gathered


def scale_loss_for_replicas(loss):
    """Divides a global-batch loss by the number of replicas in sync.

    Use on the value returned by `compute_loss` when every replica computed
    the same loss on the gathered global batch: the optimizer sums the
    replicas' gradients, so `loss / num_replicas` makes that sum equal the
    single-device gradient, and Keras' `loss` metric (which multiplies by
    `num_replicas`) shows the global loss. The identity where
    `gather_replicas` is.

    Args:
        loss: a scalar tensor.

    Returns:
        `loss / num_replicas_in_sync()`.

    Example:

    >>> float(scale_loss_for_replicas(2.0))   # one device: the identity
    2.0
    """
    replicas = num_replicas_in_sync()
    if replicas == 1:
        return loss
    loss = ops.convert_to_tensor(loss)
    return loss / ops.cast(replicas, loss.dtype)


def sum_over_replicas(x):
    """Sums `x` over all replicas (an all-reduce).

    For diagnostics that add up per-replica parts, e.g. a gradient norm over
    the global batch from each replica's rows:
    `sqrt(sum_over_replicas(sum(g_local ** 2)))`. Inside a multi-replica
    `tf.distribute` replica context returns
    `ReplicaContext.all_reduce(SUM, x)`, the same on every replica; elsewhere
    (one replica, JAX, PyTorch) returns `x`.

    Args:
        x: a tensor.

    Returns:
        The sum over replicas, or `x`.

    Example:

    >>> float(sum_over_replicas(3.0))   # one device: the identity
    3.0
    """
    context = _multi_replica_context()
    if context is None:
        return x
    import tensorflow as tf

    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)
