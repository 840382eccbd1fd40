"""Barlow Twins loss (Zbontar et al., ICML 2021, arXiv 2103.03230)."""

import keras
from keras import ops

from keras_pid_ssl.losses.base import SSLLoss
from keras_pid_ssl.utils.batch_stats import off_diagonal_mask
from keras_pid_ssl.utils.batch_stats import standardize
from keras_pid_ssl.utils.serialization import stored_arguments
from keras_pid_ssl.utils.validation import check_non_negative
from keras_pid_ssl.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class BarlowTwinsLoss(SSLLoss):
    """Barlow Twins: make the cross-correlation of two views the identity.

    Equation (1) of the paper, as in the official code
    (facebookresearch/barlowtwins, `main.py`):

        u_i = (z_i - mean) / sqrt(var + epsilon)      per dimension, over the batch
        C   = u_1^T u_2 / N                            (D x D cross-correlation)
        L   = scale * [invariance_weight * sum_k (1 - C_kk)^2
                       + lambda_offdiag * sum_{k != l} C_kl^2]

    The standardisation is `BatchNorm1d(affine=False)` in training mode: the
    biased (1/N) variance and epsilon 1e-5. The paper's lambda is 5e-3 (the
    official code uses 0.0051). `scale` multiplies both terms (an early version
    of the official code used 0.024); 1.0 is the paper's loss.

    Args:
        lambda_offdiag: weight of the redundancy-reduction (off-diagonal) term.
        invariance_weight: weight of the invariance (on-diagonal) term.
        scale: overall factor of the loss.
        epsilon: added to the variance before the square root.

    Terms reported by `terms(z1, z2)`: `invariance`, `redundancy_reduction`
    (both already weighted) and their sum `loss`.

    Example:

    >>> import numpy as np
    >>> loss = BarlowTwinsLoss()
    >>> z1 = np.random.normal(size=(8, 4)).astype("float32")
    >>> float(loss(z1, z1)) < float(loss(z1, np.random.normal(size=(8, 4)).astype("float32")))
    True
    """

    def __init__(
        self,
        lambda_offdiag=5e-3,
        invariance_weight=1.0,
        scale=1.0,
        epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._set_checked(
            check_non_negative, lambda_offdiag=lambda_offdiag, invariance_weight=invariance_weight
        )
        self._set_checked(check_positive, scale=scale, epsilon=epsilon)

    @property
    def term_names(self):
        return ("invariance", "redundancy_reduction")

    def terms(self, z1, z2):
        z1, z2 = self._prepare(z1, z2)
        batch_size = ops.cast(ops.shape(z1)[0], "float32")
        u1 = standardize(z1, self.epsilon)
        u2 = standardize(z2, self.epsilon)
        c = ops.matmul(ops.transpose(u1), u2) / batch_size
        on_diag = ops.sum(ops.square(1.0 - ops.diagonal(c)))
        # A mask rather than sum(C^2) - sum(diag^2): no cancellation in float32.
        off_diag = ops.sum(ops.square(c) * off_diagonal_mask(ops.shape(c)[0]))
        invariance = self.scale * self.invariance_weight * on_diag
        redundancy_reduction = self.scale * self.lambda_offdiag * off_diag
        return {
            "invariance": invariance,
            "redundancy_reduction": redundancy_reduction,
            "loss": invariance + redundancy_reduction,
        }

    def get_config(self):
        return {**super().get_config(), **stored_arguments(self, BarlowTwinsLoss)}
