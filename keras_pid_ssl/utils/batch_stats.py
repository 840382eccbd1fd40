"""Batch statistics shared by the losses and the PID estimators."""

from keras import ops


def standardize(z, epsilon):
    """Standardises every column of `z` over the batch (axis 0).

    `(z - mean) / sqrt(var + epsilon)` with the biased (1/N) variance, which is
    what `BatchNorm1d(affine=False)` computes in training mode and hence what
    the official Barlow Twins code uses. `epsilon` keeps constant columns
    finite (they map to 0) and their gradients finite.
    """
    mean = ops.mean(z, axis=0, keepdims=True)
    centered = z - mean
    var = ops.mean(ops.square(centered), axis=0, keepdims=True)
    return centered / ops.sqrt(var + epsilon)


def off_diagonal_mask(dim):
    """A `(dim, dim)` float32 matrix with zeros on the diagonal, ones elsewhere."""
    return 1.0 - ops.eye(dim, dtype="float32")
