"""The PID training protocol: warm-up, transition, PID stage (docs/spec.md, section 4)."""

import math

import keras

from keras_pid_ssl.config import scaled_epochs
from keras_pid_ssl.losses.pid import COEFFICIENT_NAMES
from keras_pid_ssl.losses.pid import PIDLoss
from keras_pid_ssl.utils.validation import check_int


class PIDProtocol(keras.callbacks.Callback):
    """Moves the `PIDLoss` coefficients over training.

    1. Warm-up (`warmup_epochs`, default the first 10% of `epochs`): the plain
       base loss (`invariance_weight=1`, all PID weights 0).
    2. Transition (`transition_epochs`, default the next 10%): cosine
       interpolation from the base values to the PID values, evaluated at the
       middle of each epoch: `alpha = (1 - cos(pi * (e - warmup + 0.5) / transition)) / 2`.
    3. PID stage: the PID values (`loss.pid_coefficients`, i.e. the values the
       `PIDLoss` was constructed with, unless `pid_coefficients` overrides them).

    The coefficients live in the loss's non-trainable variables, which this
    callback assigns in `on_epoch_begin`; a compiled step reads them as state
    on TensorFlow, JAX and PyTorch, and checkpoints (`model.save`,
    `BackupAndRestore`) store them. The stage is a function of the epoch index
    alone, so a run resumed at epoch `e` (`fit(initial_epoch=e)` or
    `BackupAndRestore`) continues the schedule where it stopped.

    Args:
        epochs: total number of training epochs of the schedule.
        warmup_epochs: epochs of plain base loss (default
            `kps.config.scaled_epochs(epochs)`: 10% rounded half up, e.g. 1 of 5).
        transition_epochs: epochs of interpolation (default: the same).
            `warmup_epochs + transition_epochs` must be less than `epochs`, so
            that the PID stage is reached.
        pid_coefficients: optional dict overriding the PID-stage values.

    Example:

    ```python
    model = kps.PIDModel(encoder, projector, loss=kps.losses.PIDLoss(w_syn=1.0))
    model.compile(optimizer="adamw")
    model.fit(pid_dataset, epochs=100, callbacks=[kps.callbacks.PIDProtocol(epochs=100)])
    ```
    """

    def __init__(self, epochs, warmup_epochs=None, transition_epochs=None, pid_coefficients=None):
        super().__init__()
        check_int("epochs", epochs, 1)
        self.epochs = epochs
        default = scaled_epochs(epochs)
        self.warmup_epochs = default if warmup_epochs is None else warmup_epochs
        self.transition_epochs = default if transition_epochs is None else transition_epochs
        check_int("warmup_epochs", self.warmup_epochs, 0)
        check_int("transition_epochs", self.transition_epochs, 0)
        if self.warmup_epochs + self.transition_epochs >= epochs:
            raise ValueError(
                "`warmup_epochs` + `transition_epochs` must be less than `epochs`, or "
                "training ends before the PID stage. Received: warmup_epochs="
                f"{self.warmup_epochs}, transition_epochs={self.transition_epochs}, "
                f"epochs={epochs}. Shorten the warm-up or transition, or train longer."
            )
        if pid_coefficients is not None:
            unknown = set(pid_coefficients) - set(COEFFICIENT_NAMES)
            if unknown:
                raise ValueError(
                    f"`pid_coefficients` has unknown names {sorted(unknown)}; "
                    f"expected some of {COEFFICIENT_NAMES}."
                )
        self.pid_coefficients = pid_coefficients

    def _loss(self):
        loss = getattr(self.model, "ssl_loss", None)
        if not isinstance(loss, PIDLoss):
            raise ValueError(
                "PIDProtocol needs a model trained with kps.losses.PIDLoss (e.g. "
                f"kps.PIDModel). Received a model with loss {loss!r}."
            )
        return loss

    def stage(self, epoch):
        """`"warmup"`, `"transition"` or `"pid"` for a 0-based epoch index."""
        if epoch < self.warmup_epochs:
            return "warmup"
        if epoch < self.warmup_epochs + self.transition_epochs:
            return "transition"
        return "pid"

    def coefficients_at(self, epoch, loss=None):
        """The coefficient values used during the 0-based `epoch`."""
        loss = loss or self._loss()
        start = loss.base_coefficients
        end = dict(loss.pid_coefficients, **(self.pid_coefficients or {}))
        stage = self.stage(epoch)
        if stage == "warmup":
            return dict(start)
        if stage == "pid":
            return dict(end)
        progress = (epoch - self.warmup_epochs + 0.5) / self.transition_epochs
        alpha = 0.5 * (1.0 - math.cos(math.pi * progress))
        return {k: start[k] + alpha * (end[k] - start[k]) for k in COEFFICIENT_NAMES}

    def on_epoch_begin(self, epoch, logs=None):
        self._loss().set_coefficients(**self.coefficients_at(epoch))
