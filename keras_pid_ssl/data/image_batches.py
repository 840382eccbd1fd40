"""`ImageBatches`: uint8 image batches for device augmentation, without TensorFlow."""

import keras
import numpy as np

from keras_pid_ssl.data.images import check_uint8_images
from keras_pid_ssl.utils.validation import check_int


class ImageBatches(keras.utils.PyDataset):
    """Batches `{"images": uint8 (batch_size, height, width, channels)}` of NumPy images.

    The input path of a model that draws its views on the device
    (`kps.SSLModel(..., augment="cifar")`): it needs no `tf.data`, so it runs
    where TensorFlow is not installed, on every backend. Pass `e` visits the
    images in an order that depends on `(seed, e)` only; the pass number is
    `epoch`, which `kps.callbacks.DataEpoch` sets to `fit`'s epoch, so a run
    resumed at epoch `e` reads what an uninterrupted one reads. Every batch
    is full (the last partial one is dropped: the losses use batch
    statistics). Call `fit(..., shuffle=False)`: the order is this object's
    (Keras would otherwise reshuffle the batches with Python's `random`).

    Args:
        images: uint8 NumPy array `(num_images, height, width, channels)`.
        batch_size: images per batch (>= 2, at most `len(images)`).
        seed: seed of the order.
        shuffle: `False` keeps the images' order.
        labels: optional int array `(num_images,)`, yielded as `"label"`.
        **kwargs: `keras.utils.PyDataset`'s (`workers`, ...).

    Example:

    >>> batches = ImageBatches(np.zeros((10, 8, 8, 3), "uint8"), batch_size=4, seed=0)
    >>> len(batches), batches[0]["images"].shape, batches[0]["images"].dtype
    (2, (4, 8, 8, 3), dtype('uint8'))
    """

    def __init__(self, images, batch_size, seed=0, shuffle=True, labels=None, **kwargs):
        super().__init__(**kwargs)
        self.images = check_uint8_images(images)
        check_int("batch_size", batch_size, 2, len(self.images))
        check_int("seed", seed, 0)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(self.images),):
                raise ValueError(
                    f"`labels` must have shape ({len(self.images)},), one per image. "
                    f"Received: shape={labels.shape}"
                )
        self.labels = labels
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.set_epoch(0)

    def set_epoch(self, epoch):
        """Makes the next pass read pass `epoch`'s order."""
        self.epoch = int(epoch)
        count = len(self.images)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            self.order = rng.permutation(count)
        else:
            self.order = np.arange(count)

    def __len__(self):
        return len(self.images) // self.batch_size

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} of {len(self)}.")
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = {"images": self.images[chosen]}
        if self.labels is not None:
            batch["label"] = self.labels[chosen]
        return batch

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)
