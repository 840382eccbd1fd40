"""A progress bar that shows the loss and a handful of key figures."""

import keras

# What a PID run's line shows by default, in this order, when logged: the
# loss, the invariance term, the synergy atom, the ratio of the PID terms'
# gradient to the base loss's, and the online probe's accuracy. With Keras's
# bar, step counter and timing, a line stays under 160 characters.
KEY_METRICS = ("loss", "invariance", "synergy", "pid_grad_ratio", "probe_accuracy")


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, showing only the figures named in `metrics`.

    An SSL model logs every term of its loss, the PID atoms and the
    monitors' figures: twenty or more values, which make every update of
    Keras's progress bar wrap over several lines. This bar shows the ones
    named in `metrics` that are logged (others are skipped), in that order.
    It filters only what it prints: every other callback (`History`,
    `CSVLogger`, `TensorBoard`, ...) still receives all the logs, unchanged.

    Being a `keras.callbacks.ProgbarLogger`, it replaces Keras's own bar
    when passed to `fit(..., callbacks=[...])` with `verbose=1` (or 2):
    Keras adds its default bar only when the callbacks hold no
    `ProgbarLogger`.

    Args:
        metrics: names of the logged values to show, in display order, e.g.
            `("loss", "val_loss")`.

    Example:

    >>> bar = kps.callbacks.ProgressBar(metrics=("loss", "synergy"))
    >>> bar.shown({"synergy": 0.5, "mae": 2.0, "loss": 1.0})
    {'loss': 1.0, 'synergy': 0.5}

    ```python
    model.fit(dataset, epochs=100, callbacks=[bar, keras.callbacks.CSVLogger("history.csv")])
    ```
    """

    def __init__(self, metrics=KEY_METRICS):
        super().__init__()
        names = None if isinstance(metrics, str) else tuple(_iterate(metrics))
        if names is None or not all(isinstance(name, str) and name for name in names):
            raise ValueError(
                "`metrics` must be a sequence of metric names (non-empty strings), e.g. "
                f"('loss', 'synergy'). Received: metrics={metrics!r}"
            )
        self.metrics = names

    def shown(self, logs):
        """The entries of `logs` this bar prints: a new dict, in `metrics` order."""
        logs = logs or {}
        return {name: logs[name] for name in self.metrics if name in logs}

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, self.shown(logs))

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(batch, self.shown(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self.shown(logs))

    def on_test_end(self, logs=None):
        super().on_test_end(self.shown(logs))


def _iterate(value):
    """The items of `value`, or `[None]` (an invalid name) when it is not iterable."""
    try:
        return iter(value)
    except TypeError:
        return iter([None])
