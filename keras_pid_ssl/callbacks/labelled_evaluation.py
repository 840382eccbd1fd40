"""The shared part of the monitors that score backbone features on labelled data.

`KNNMonitor` and `OnlineLinearProbe` both take a labelled training subset and
a labelled test subset, embed them with the backbone every few epochs and log
a top-1 (and top-5) accuracy; this module holds what they share: reading and
checking the labelled data (once, on the host), embedding it, choosing the
evaluation epochs and logging NaN on the others.
"""

import math

import keras
import numpy as np

from keras_pid_ssl.metrics import top_k_accuracy
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import check_labels


def labelled_arrays(data, name):
    """`(images, labels)` NumPy arrays from arrays or a finite dataset.

    Images are returned as float32 in [0, 1] (uint8 images are divided by
    255); one-hot labels are turned into integer labels.

    Args:
        data: a tuple `(images, labels)` or a finite `tf.data.Dataset` of such
            batches.
        name: the argument's name, for error messages.

    Returns:
        `(images, labels)`: float32 and int64 NumPy arrays.

    Example:

    >>> images, labels = labelled_arrays(
    ...     (np.full((2, 4, 4, 1), 255, "uint8"), np.eye(3)[[2, 0]]), "train_data")
    >>> float(images.max()), labels.tolist()
    (1.0, [2, 0])
    """
    if hasattr(data, "as_numpy_iterator"):  # a tf.data.Dataset of batches
        batches = list(data.as_numpy_iterator())
        if not batches or len(batches[0]) != 2:
            raise ValueError(
                f"`{name}` must yield (images, labels) batches; received "
                f"{len(batches[0]) if batches else 0} elements."
            )
        data = (
            np.concatenate([b[0] for b in batches]),
            np.concatenate([b[1] for b in batches]),
        )
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(
            f"`{name}` must be a tuple (images, labels) or a tf.data.Dataset of "
            f"such batches. Received: {type(data).__name__}"
        )
    images, labels = np.asarray(data[0]), np.asarray(data[1])
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or images.shape[0] == 0:
        raise ValueError(
            f"`{name}` needs as many labels as images (at least one); received "
            f"images of shape {images.shape} and labels of shape {labels.shape}."
        )
    check_labels(name, labels)  # integers; the range is checked with num_classes
    if images.dtype == np.uint8:
        images = images.astype("float32") / 255.0
    return images.astype("float32"), labels.astype("int64")


def resolve_encoder(model, encoder, caller):
    """`encoder` if given, else `model.encoder` (of `kps.SSLModel`, `kps.PIDModel`)."""
    if encoder is not None:
        return encoder
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ValueError(
            f"{caller} embeds images with `model.encoder` (kps.SSLModel, "
            f"kps.PIDModel); {type(model).__name__} has none. Pass `encoder=`."
        )
    return encoder


def encode(encoder, images, batch_size):
    """float32 NumPy features of `images`, in inference mode."""
    features = encoder.predict(images, batch_size=batch_size, verbose=0)
    return np.asarray(keras.ops.convert_to_numpy(features), np.float32)


def is_evaluation_epoch(epoch, every, params):
    """Every `every` epochs (1-based), and at the last epoch of `fit`."""
    last_epoch = (params or {}).get("epochs")
    return (epoch + 1) % every == 0 or (last_epoch is not None and epoch + 1 == last_epoch)


class LabelledEvaluation(keras.callbacks.Callback):
    """Base of the callbacks that score backbone features on labelled data.

    Reads and checks `train_data` and `test_data` once, when constructed:
    labels must be integers in `[0, num_classes)` (`num_classes` defaults to
    the largest label plus one), so a bad label fails here with a message
    instead of inside a compiled step. Every `every` epochs, and at the last
    one, `on_epoch_end` calls `evaluate()` and logs its metrics, named
    `<prefix>_accuracy` and, with more than 5 classes, `<prefix>_top5`; other
    epochs log NaN, so `CSVLogger` and `History` keep the columns. `history`
    holds the evaluated epochs' `{"epoch", ...metrics}` rows.

    Subclasses set `prefix` and implement `evaluate()`, typically with
    `features()` and `accuracy_metrics()`.
    """

    prefix = None

    def __init__(self, train_data, test_data, num_classes, every, batch_size, encoder):
        super().__init__()
        check_int("every", every, 1)
        check_int("batch_size", batch_size, 1)
        check_int("num_classes", num_classes, 1, allow_none=True)
        self.train_images, self.train_labels = labelled_arrays(train_data, "train_data")
        self.test_images, self.test_labels = labelled_arrays(test_data, "test_data")
        if num_classes is None:
            num_classes = int(max(self.train_labels.max(), self.test_labels.max())) + 1
        check_labels("train_data", self.train_labels, num_classes)
        check_labels("test_data", self.test_labels, num_classes)
        self.num_classes = int(num_classes)
        self.every = every
        self.batch_size = batch_size
        self.encoder = encoder
        self.history = []

    @property
    def metric_names(self):
        names = [f"{self.prefix}_accuracy"]
        if self.num_classes > 5:
            names.append(f"{self.prefix}_top5")
        return names

    def features(self):
        """`(train_features, test_features)` of the current backbone."""
        encoder = resolve_encoder(self.model, self.encoder, type(self).__name__)
        return (
            encode(encoder, self.train_images, self.batch_size),
            encode(encoder, self.test_images, self.batch_size),
        )

    def accuracy_metrics(self, scores):
        """Top-1 (and top-5) accuracy of `(num_test, num_classes)` scores."""
        values = [top_k_accuracy(scores, self.test_labels, k) for k in (1, 5)]
        return dict(zip(self.metric_names, values[: len(self.metric_names)], strict=True))

    def evaluate(self):
        """The metrics (floats) of the current backbone."""
        raise NotImplementedError

    def on_epoch_end(self, epoch, logs=None):
        if is_evaluation_epoch(epoch, self.every, self.params):
            metrics = self.evaluate()
            self.history.append(dict(epoch=epoch + 1, **metrics))
        else:
            metrics = dict.fromkeys(self.metric_names, math.nan)
        if logs is not None:
            logs.update(metrics)
