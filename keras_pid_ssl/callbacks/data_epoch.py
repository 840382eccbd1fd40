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
            `epoch` variable, or a `kps.data.ImageBatches` (anything with a
            `set_epoch(epoch)` method).

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
        if callable(getattr(dataset, "set_epoch", None)):
            self.set_epoch = dataset.set_epoch
            return
        epoch = getattr(dataset, "epoch", dataset)
        if not (hasattr(epoch, "assign") and getattr(epoch, "shape", None) == ()):
            raise ValueError(
                "`dataset` must be a dataset made by kps.data.ssl_dataset or "
                "kps.data.labeled_dataset (they carry a `.epoch` counter), that "
                f"counter, or a kps.data.ImageBatches. Received: {dataset!r}"
            )
        self.set_epoch = epoch.assign

    def on_epoch_begin(self, epoch, logs=None):
        self.set_epoch(epoch)
