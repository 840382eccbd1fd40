"""The first batch of what `fit` receives, read without consuming anything."""

import numpy as np


def first_batch(x, rows=64):
    """The first batch of `x` as NumPy values, or None if `x` cannot be peeked.

    `x` is what `model.fit` receives: a `tf.data.Dataset` (one batch is read
    from a fresh iterator; the pass counter of `kps.data` datasets,
    `x.epoch`, is put back, so the check consumes nothing from any epoch's
    order), a dict of arrays (its first `rows` rows), or an array.
    """
    if hasattr(x, "take") and hasattr(x, "element_spec"):  # tf.data.Dataset
        epoch = getattr(x, "epoch", None)
        before = None if epoch is None else epoch.numpy()
        try:
            batch = next(iter(x.take(1)), None)
        finally:
            if epoch is not None:
                epoch.assign(before)
        if batch is None:
            return None
        if isinstance(batch, dict):
            return {key: np.asarray(value) for key, value in batch.items()}
        return batch
    if isinstance(x, dict):
        return {key: np.asarray(value)[:rows] for key, value in x.items()}
    if isinstance(x, np.ndarray):
        return x[:rows]
    return None
