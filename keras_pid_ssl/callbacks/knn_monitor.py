"""Weighted k-nearest-neighbour accuracy of backbone features during training."""

import numpy as np

from keras_pid_ssl.callbacks.labelled_evaluation import LabelledEvaluation
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import check_labels
from keras_pid_ssl.utils.validation import check_positive


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
    check_int("k", k, 1)
    check_positive("temperature", temperature)
    check_int("num_classes", num_classes, 1)
    check_labels("train_labels", train_labels, num_classes)
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


def _l2_normalise(features):
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


class KNNMonitor(LabelledEvaluation):
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
    epochs. The labels are checked once, here: integers in
    `[0, num_classes)`.

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

    prefix = "knn"

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
        check_int("k", k, 1)
        check_positive("temperature", temperature)
        super().__init__(train_data, test_data, num_classes, every, batch_size, encoder)
        self.k = k
        self.temperature = float(temperature)

    def evaluate(self):
        """kNN metrics (floats) of the current backbone."""
        train_features, test_features = self.features()
        scores = weighted_knn_scores(
            train_features,
            self.train_labels,
            test_features,
            self.num_classes,
            k=self.k,
            temperature=self.temperature,
        )
        return self.accuracy_metrics(scores)
