"""VICReg loss (Bardes, Ponce, LeCun, ICLR 2022, arXiv 2105.04906)."""

import keras
from keras import ops

from keras_pid_ssl.losses.base import SSLLoss
from keras_pid_ssl.utils.batch_stats import off_diagonal_mask
from keras_pid_ssl.utils.serialization import stored_arguments
from keras_pid_ssl.utils.validation import check_non_negative
from keras_pid_ssl.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class VICRegLoss(SSLLoss):
    """VICReg: variance-invariance-covariance regularisation.

    As in the official code (facebookresearch/vicreg, `main_vicreg.py`):

        invariance = mean((z1 - z2)^2)                               (MSE)
        std_i      = sqrt(var_unbiased(z_i) + epsilon)                per dimension
        variance   = mean(relu(gamma - std_1)) / 2 + mean(relu(gamma - std_2)) / 2
        cov_i      = (z_i - mean)^T (z_i - mean) / (N - 1)
        covariance = sum_{k != l} cov_1[k, l]^2 / D + sum_{k != l} cov_2[k, l]^2 / D
        L = invariance_weight * invariance + variance_weight * variance
            + covariance_weight * covariance

    Defaults are the paper's (25, 25, 1, epsilon 1e-4, gamma 1). Note that the
    two views' variance terms are averaged while their covariance terms are
    summed, exactly as in the official code.

    Args:
        invariance_weight: weight of the invariance (MSE) term (lambda).
        variance_weight: weight of the variance hinge (mu).
        covariance_weight: weight of the covariance term (nu).
        epsilon: added to the variance before the square root.
        gamma: target standard deviation of the hinge.

    Terms reported by `terms(z1, z2)`: `invariance`, `variance`, `covariance`
    (weighted) and their sum `loss`.

    Example:

    >>> import numpy as np
    >>> loss = VICRegLoss()
    >>> z = np.random.normal(size=(8, 4)).astype("float32")
    >>> float(loss(z, z)) >= 0.0
    True
    """

    def __init__(
        self,
        invariance_weight=25.0,
        variance_weight=25.0,
        covariance_weight=1.0,
        epsilon=1e-4,
        gamma=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._set_checked(
            check_non_negative,
            invariance_weight=invariance_weight,
            variance_weight=variance_weight,
            covariance_weight=covariance_weight,
        )
        self._set_checked(check_positive, epsilon=epsilon, gamma=gamma)

    @property
    def term_names(self):
        return ("invariance", "variance", "covariance")

    def _variance_and_covariance(self, z):
        n = ops.cast(ops.shape(z)[0], "float32")
        dim = ops.shape(z)[1]
        centered = z - ops.mean(z, axis=0, keepdims=True)
        var = ops.sum(ops.square(centered), axis=0) / (n - 1.0)
        std = ops.sqrt(var + self.epsilon)
        variance = ops.mean(ops.relu(self.gamma - std))
        cov = ops.matmul(ops.transpose(centered), centered) / (n - 1.0)
        covariance = ops.sum(ops.square(cov) * off_diagonal_mask(dim))
        return variance, covariance / ops.cast(dim, "float32")

    def terms(self, z1, z2):
        z1, z2 = self._prepare(z1, z2)
        invariance = ops.mean(ops.square(z1 - z2))
        var1, cov1 = self._variance_and_covariance(z1)
        var2, cov2 = self._variance_and_covariance(z2)
        weighted = {
            "invariance": self.invariance_weight * invariance,
            "variance": self.variance_weight * (var1 + var2) / 2.0,
            "covariance": self.covariance_weight * (cov1 + cov2),
        }
        weighted["loss"] = weighted["invariance"] + weighted["variance"] + weighted["covariance"]
        return weighted

    def get_config(self):
        return {**super().get_config(), **stored_arguments(self, VICRegLoss)}
