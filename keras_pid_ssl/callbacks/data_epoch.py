"""Ties a dataset's pass counter to Keras's epoch number."""

import keras


class DataEpoch(keras.callbacks.Callback):
    """Makes epoch `k` of `fit` read the batches keyed by `(seed, k)`.

    `kps.data.ssl_dataset` and `kps.data.labeled_dataset` draw the order and
    the augmentation of each pass from `(seed, dataset.epoch)` and advance
    `dataset.epoch` themselves. This callback sets it to the epoch `fit` is
    about to run, so a run resumed at epoch `k` (e.g. by
    `kps.callbacks.ResumableBackup`) sees the same data as an uninterrupted
    one, whatever else iterated the dataset before.

    Args:
        dataset: a dataset from `ssl_dataset` / `labeled_dataset`, or its
            `epoch` variable.

    Example:

    ```python
    dataset = kps.data.ssl_dataset(images, views="pid", seed=0)
    model.fit(dataset, epochs=100, callbacks=[
        kps.callbacks.DataEpoch(dataset),
        kps.callbacks.ResumableBackup("runs/exp/backup"),
    ])
    ```
    """

    def __init__(self, dataset):
        super().__init__()
        epoch = getattr(dataset, "epoch", dataset)
        if not (hasattr(epoch, "assign") and getattr(epoch, "shape", None) == ()):
            raise ValueError(
                "`dataset` must be a dataset made by kps.data.ssl_dataset or "
                "kps.data.labeled_dataset (they carry a `.epoch` counter), or that "
                f"counter. Received: {dataset!r}"
            )
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)
