"""Learning-rate helpers: the linear scaling rule and warm-up + cosine decay."""

import keras

from keras_pid_ssl.utils.validation import check_in_range
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import check_positive


def scale_learning_rate(base_learning_rate, batch_size, reference_batch_size=256):
    """The linear scaling rule: `base_learning_rate * batch_size / 256`.

    Goyal et al. (2017), used by SimCLR, Barlow Twins and VICReg: learning
    rates are quoted for a batch of `reference_batch_size` and scale linearly
    with the batch.

    Args:
        base_learning_rate: learning rate at `reference_batch_size` (> 0).
        batch_size: the (global) training batch size (int > 0).
        reference_batch_size: batch size the base rate is quoted for.

    Returns:
        The scaled learning rate, a Python float.

    Example:

    >>> scale_learning_rate(0.2, batch_size=512)
    0.4
    """
    check_positive("base_learning_rate", base_learning_rate)
    check_int("batch_size", batch_size, 1)
    check_int("reference_batch_size", reference_batch_size, 1)
    return float(base_learning_rate) * batch_size / reference_batch_size


def warmup_cosine_decay(
    peak_learning_rate,
    total_steps,
    warmup_steps=0,
    final_learning_rate_fraction=0.0,
):
    """Linear warm-up from 0 to the peak, then cosine decay, per step.

    The schedule of the Barlow Twins and VICReg code: for `step < warmup_steps`,
    `lr = peak * step / warmup_steps`; after it, with
    `t = (step - warmup_steps) / (total_steps - warmup_steps)` and
    `q = (1 + cos(pi t)) / 2`, `lr = peak * (q + final_fraction * (1 - q))`;
    it stays at `peak * final_fraction` after `total_steps`. Barlow Twins
    uses 10 warm-up epochs and `final_learning_rate_fraction=0.001`.

    This is Keras's own `CosineDecay` (with `warmup_target`), which computes
    exactly this, so the schedule serialises with the optimizer.

    Args:
        peak_learning_rate: rate reached at the end of warm-up (> 0).
        total_steps: steps of the whole run, warm-up included (int).
        warmup_steps: steps of linear warm-up (0 <= warmup_steps < total_steps).
        final_learning_rate_fraction: final rate as a fraction of the peak,
            in [0, 1].

    Returns:
        A `keras.optimizers.schedules.CosineDecay`.

    Example:

    >>> schedule = warmup_cosine_decay(1.0, total_steps=100, warmup_steps=10)
    >>> float(schedule(5))
    0.5
    """
    check_positive("peak_learning_rate", peak_learning_rate)
    check_int("warmup_steps", warmup_steps, 0)
    check_int("total_steps", total_steps, 1)
    if total_steps <= warmup_steps:
        raise ValueError(
            "`total_steps` must be greater than `warmup_steps`: the steps include the "
            f"warm-up. Received: total_steps={total_steps}, warmup_steps={warmup_steps}"
        )
    check_in_range("final_learning_rate_fraction", final_learning_rate_fraction, 0, 1)
    decay_steps = total_steps - warmup_steps
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=float(peak_learning_rate),
            decay_steps=decay_steps,
            alpha=float(final_learning_rate_fraction),
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=decay_steps,
        alpha=float(final_learning_rate_fraction),
        warmup_target=float(peak_learning_rate),
        warmup_steps=warmup_steps,
    )
