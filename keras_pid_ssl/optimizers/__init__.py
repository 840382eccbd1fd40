"""Optimizers and learning-rate schedules of the SSL recipes."""

from keras_pid_ssl.optimizers.lars import LARS
from keras_pid_ssl.optimizers.schedules import scale_learning_rate
from keras_pid_ssl.optimizers.schedules import warmup_cosine_decay

__all__ = [
    "LARS",
    "scale_learning_rate",
    "warmup_cosine_decay",
]
