"""LARS: layer-wise adaptive rate scaling (You, Gitman, Ginsburg, 2017)."""

import numbers

import keras
from keras import ops

from keras_pid_ssl.utils.serialization import stored_arguments
from keras_pid_ssl.utils.validation import check_momentum
from keras_pid_ssl.utils.validation import check_non_negative
from keras_pid_ssl.utils.validation import check_positive


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class LARS(keras.optimizers.Optimizer):
    """SGD with momentum whose step is rescaled per variable by a trust ratio.

    This is the LARS of the official Barlow Twins code
    (facebookresearch/barlowtwins, `main.py`), also used by VICReg. For each
    variable `w` with gradient `g`, one step is

    ```
    d  = g + weight_decay * w                      # coupled L2 decay
    q  = eta * ||w|| / ||d||   (1 if ||w|| = 0 or ||d|| = 0)
    d  = q * d                                     # layer-wise adaptation
    mu = momentum * mu + d
    w  = w - learning_rate * mu
    ```

    With `exclude_bias_and_norm=True` (default, as in Barlow Twins and
    VICReg), 1-D variables (biases and batch-norm scales and offsets) get
    neither weight decay nor the trust ratio: their step is plain momentum
    SGD. Variables passed to `exclude_from_weight_decay()` also skip the
    decay (but keep the trust ratio).

    Weight decay here is added to the gradient before the trust ratio, as in
    the reference; Keras's decoupled decay of the base class is not applied.
    Hand-written because neither Keras nor a maintained Keras 3 package ships
    a LARS; each step uses `keras.ops` only, so it runs on TensorFlow, JAX and
    PyTorch.

    Args:
        learning_rate: a float > 0 or a `keras.optimizers.schedules`
            schedule (e.g. `kps.optimizers.warmup_cosine_decay(...)`).
        momentum: momentum coefficient in `[0, 1)`.
        weight_decay: L2 coefficient added to the gradient (>= 0). Barlow
            Twins uses 1.5e-6, VICReg 1e-6.
        eta: trust coefficient of the layer-wise adaptation (> 0).
        exclude_bias_and_norm: exempt 1-D variables from decay and
            adaptation.
        bias_and_norm_learning_rate_scale: multiplier of the learning rate
            of 1-D variables (Barlow Twins uses 0.0048 / 0.2 = 0.024; default
            1.0, i.e. one learning rate for all).
        **kwargs: base optimizer arguments (`name`, `clipnorm`,
            `global_clipnorm`, `use_ema`, `gradient_accumulation_steps`, ...).

    Example:

    ```python
    import keras_pid_ssl as kps
    schedule = kps.optimizers.warmup_cosine_decay(
        peak_learning_rate=kps.optimizers.scale_learning_rate(0.2, 256),
        total_steps=1000 * 195, warmup_steps=10 * 195,
        final_learning_rate_fraction=0.001)
    model.compile(optimizer=kps.optimizers.LARS(schedule, weight_decay=1.5e-6))
    ```
    """

    def __init__(
        self,
        learning_rate=0.2,
        momentum=0.9,
        weight_decay=0.0,
        eta=0.001,
        exclude_bias_and_norm=True,
        bias_and_norm_learning_rate_scale=1.0,
        name="lars",
        **kwargs,
    ):
        # A schedule (or a variable) is checked by Keras; a number here, as the
        # base class accepts a negative one and would then ascend the loss.
        if isinstance(learning_rate, numbers.Number):
            check_positive("learning_rate", learning_rate)
            learning_rate = float(learning_rate)  # Keras refuses NumPy scalars
        check_momentum("momentum", momentum)
        if weight_decay is None:
            weight_decay = 0.0
        check_non_negative("weight_decay", weight_decay)
        check_positive("eta", eta)
        check_non_negative("bias_and_norm_learning_rate_scale", bias_and_norm_learning_rate_scale)
        # The decay is coupled into the gradient in `update_step`; the base
        # class must not apply its decoupled decay, hence `weight_decay=None`.
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.eta = float(eta)
        self.exclude_bias_and_norm = bool(exclude_bias_and_norm)
        self.bias_and_norm_learning_rate_scale = float(bias_and_norm_learning_rate_scale)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def _apply_weight_decay(self, variables):
        # Weight decay is part of the LARS step (added to the gradient before
        # the trust ratio), not applied separately.
        return

    def _is_bias_or_norm(self, variable):
        return len(variable.shape) <= 1

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        update = ops.cast(gradient, dtype)
        exempt = self.exclude_bias_and_norm and self._is_bias_or_norm(variable)

        if self.weight_decay > 0 and not exempt and self._use_weight_decay(variable):
            update = update + ops.cast(self.weight_decay, dtype) * variable

        if not exempt:
            weight_norm = ops.sqrt(ops.sum(ops.square(variable)))
            update_norm = ops.sqrt(ops.sum(ops.square(update)))
            one = ops.ones_like(weight_norm)
            # Safe denominator: the ratio is discarded where a norm is 0.
            ratio = (
                ops.cast(self.eta, dtype)
                * weight_norm
                / ops.where(update_norm > 0, update_norm, one)
            )
            trust_ratio = ops.where(ops.logical_and(weight_norm > 0, update_norm > 0), ratio, one)
            update = update * trust_ratio

        if self._is_bias_or_norm(variable):
            learning_rate = learning_rate * ops.cast(self.bias_and_norm_learning_rate_scale, dtype)

        momentum = self.momentums[self._get_variable_index(variable)]
        self.assign(momentum, ops.cast(self.momentum, dtype) * momentum + update)
        self.assign_sub(variable, learning_rate * momentum)

    def get_config(self):
        # The base class's config holds the (serialised) learning rate and the name.
        arguments = stored_arguments(self, LARS, skip=("learning_rate", "name"))
        return {**super().get_config(), **arguments}
