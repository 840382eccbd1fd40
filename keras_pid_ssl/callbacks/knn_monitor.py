"""Weighted k-nearest-neighbour accuracy of backbone features during training."""

import math

import keras
import numpy as np


def weighted_knn_scores(
    train_features, train_labels, test_features, num_classes, k=200, temperature=0.1
):
    """Class scores of the weighted kNN classifier of InstDisc / solo-learn.

    Features are L2-normalised; each test sample's `k` most cosine-similar
    training samples vote for their class with weight `exp(similarity / T)`;
    a class's score is the sum of its votes (Wu et al., 2018, "Unsupervised
    Feature Learning via Non-Parametric Instance Discrimination"; the
    `WeightedKNNClassifier` of solo-learn). Computed in NumPy, in chunks of
    test samples so the similarity matrix never exceeds 256 rows.

    Args:
        train_features: `(num_train, dim)` features of the labelled bank.
        train_labels: `(num_train,)` integer labels in `[0, num_classes)`.
        test_features: `(num_test, dim)` features to classify.
        num_classes: number of classes.
        k: neighbours (capped at `num_train`).
        temperature: temperature `T` of the vote weights (> 0).

    Returns:
        `(num_test, num_classes)` float64 scores; `argmax` is the prediction.

    Example:

    >>> scores = weighted_knn_scores(np.eye(3), np.array([0, 1, 2]),
    ...                              np.eye(3), num_classes=3, k=1)
    >>> scores.argmax(axis=1)
    array([0, 1, 2])
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be an int >= 1. Received: k={k!r}")
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature!r}")
    train = _l2_normalise(np.asarray(train_features, np.float64))
    test = _l2_normalise(np.asarray(test_features, np.float64))
    train_labels = np.asarray(train_labels).astype(np.int64)
    k = min(k, train.shape[0])
    scores = np.zeros((test.shape[0], num_classes))
    for start in range(0, test.shape[0], 256):
        similarity = test[start : start + 256] @ train.T
        # Indices of the k largest similarities per row (order irrelevant).
        neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(similarity, neighbours, axis=1) / temperature)
        rows = np.repeat(np.arange(neighbours.shape[0]), k)
        np.add.at(
            scores[start : start + 256],
            (rows, train_labels[neighbours].ravel()),
            weights.ravel(),
        )
    return scores


def top_k_accuracy(scores, labels, k=1):
    """Fraction of samples whose label is among the `k` highest scores."""
    top = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))


def _l2_normalise(features):
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _labelled_arrays(data, name):
    """`(images, labels)` NumPy arrays from arrays or a finite dataset.

    Images are returned as float32 in [0, 1] (uint8 images are divided by
    255); one-hot labels are turned into integer labels.
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
    if images.dtype == np.uint8:
        images = images.astype("float32") / 255.0
    return images.astype("float32"), labels.astype("int64")


def _resolve_encoder(model, encoder, caller):
    if encoder is not None:
        return encoder
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise ValueError(
            f"{caller} embeds images with `model.encoder` (kps.SSLModel, "
            f"kps.PIDModel); {type(model).__name__} has none. Pass `encoder=`."
        )
    return encoder


def _encode(encoder, images, batch_size):
    features = encoder.predict(images, batch_size=batch_size, verbose=0)
    return np.asarray(keras.ops.convert_to_numpy(features), np.float32)


def _is_evaluation_epoch(epoch, every, params):
    """Every `every` epochs (1-based), and at the last epoch of `fit`."""
    last_epoch = (params or {}).get("epochs")
    return (epoch + 1) % every == 0 or (last_epoch is not None and epoch + 1 == last_epoch)


class KNNMonitor(keras.callbacks.Callback):
    """Weighted kNN accuracy of backbone features, logged as `knn_accuracy`.

    Every `every` epochs (and at the last one), the backbone (`model.encoder`)
    embeds a labelled training bank and a labelled test set in inference
    mode; each test image is classified by its `k` nearest training features
    under cosine similarity, weighted by `exp(similarity / temperature)`
    (k=200, T=0.1 as in InstDisc and solo-learn; see `weighted_knn_scores`).
    Top-1 accuracy goes into the epoch logs as `knn_accuracy` (and
    `knn_top5` when there are more than 5 classes); epochs without an
    evaluation log NaN, so `CSVLogger` and `History` keep the column. Place
    the monitor before `CSVLogger`/`TensorBoard` in the callbacks list.
    `history` holds `{"epoch", "knn_accuracy", ...}` rows of the evaluated
    epochs.

    Args:
        train_data: `(images, labels)` arrays (or a finite `tf.data.Dataset`
            of such batches) for the neighbour bank; images float32 in
            [0, 1] or uint8 in [0, 255]; labels integer or one-hot.
        test_data: the same, for the images to classify.
        k: number of neighbours.
        temperature: temperature of the vote weights.
        num_classes: number of classes (default: inferred from the labels).
        every: evaluate every `every` epochs.
        batch_size: batch size of the feature extraction.
        encoder: the backbone to evaluate (default: `model.encoder`).

    Example:

    ```python
    knn = kps.callbacks.KNNMonitor((x_train[:5000], y_train[:5000]),
                                   (x_test[:1000], y_test[:1000]), every=5)
    model.fit(ssl_dataset, epochs=100, callbacks=[knn])
    ```
    """

    def __init__(
        self,
        train_data,
        test_data,
        k=200,
        temperature=0.1,
        num_classes=None,
        every=1,
        batch_size=256,
        encoder=None,
    ):
        super().__init__()
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be an int >= 1. Received: k={k!r}")
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(
                f"`temperature` must be a float > 0. Received: temperature={temperature!r}"
            )
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"`every` must be an int >= 1. Received: every={every!r}")
        self.train_images, self.train_labels = _labelled_arrays(train_data, "train_data")
        self.test_images, self.test_labels = _labelled_arrays(test_data, "test_data")
        if num_classes is None:
            num_classes = int(max(self.train_labels.max(), self.test_labels.max())) + 1
        self.num_classes = int(num_classes)
        self.k = k
        self.temperature = float(temperature)
        self.every = every
        self.batch_size = int(batch_size)
        self.encoder = encoder
        self.history = []

    def evaluate(self):
        """kNN metrics (floats) of the current backbone."""
        encoder = _resolve_encoder(self.model, self.encoder, type(self).__name__)
        train_features = _encode(encoder, self.train_images, self.batch_size)
        test_features = _encode(encoder, self.test_images, self.batch_size)
        scores = weighted_knn_scores(
            train_features,
            self.train_labels,
            test_features,
            self.num_classes,
            k=self.k,
            temperature=self.temperature,
        )
        metrics = {"knn_accuracy": top_k_accuracy(scores, self.test_labels, k=1)}
        if self.num_classes > 5:
            metrics["knn_top5"] = top_k_accuracy(scores, self.test_labels, k=5)
        return metrics

    def on_epoch_end(self, epoch, logs=None):
        if _is_evaluation_epoch(epoch, self.every, self.params):
            metrics = self.evaluate()
            self.history.append(dict(epoch=epoch + 1, **metrics))
        else:
            metrics = {"knn_accuracy": math.nan}
            if self.num_classes > 5:
                metrics["knn_top5"] = math.nan
        if logs is not None:
            logs.update(metrics)
