"""A linear probe on frozen backbone features, trained alongside pretraining."""

import math

import keras
import numpy as np

from keras_pid_ssl.callbacks.knn_monitor import _encode
from keras_pid_ssl.callbacks.knn_monitor import _is_evaluation_epoch
from keras_pid_ssl.callbacks.knn_monitor import _labelled_arrays
from keras_pid_ssl.callbacks.knn_monitor import _resolve_encoder
from keras_pid_ssl.callbacks.knn_monitor import top_k_accuracy
from keras_pid_ssl.heads.linear_classifier import LinearClassifier


class OnlineLinearProbe(keras.callbacks.Callback):
    """Linear-probe accuracy of the backbone while it pretrains.

    solo-learn and lightly train a linear classifier on stop-gradient
    backbone features of each labelled training batch. This callback keeps
    the idea (a `kps.heads.LinearClassifier` with its own optimizer, never
    back-propagating into the backbone) but runs at epoch end, which works
    the same on TensorFlow, JAX and PyTorch (under JAX the Python-side model
    weights are only synchronised at epoch boundaries, so per-batch callback
    work would see stale weights):

    1. the backbone (`model.encoder`) embeds a labelled training subset and
       a labelled test set in inference mode (`encoder.predict`: features
       are constants to the probe, the stop-gradient of the online probe);
    2. the probe trains for `probe_epochs` passes over the training features,
       warm-started from the previous evaluation (weights and optimizer
       state persist, so it tracks the drifting features as an online probe
       does);
    3. its top-1 (and top-5 when there are more than 5 classes) accuracy on
       the test features goes into the epoch logs as `probe_accuracy` and
       `probe_top5`. Epochs without an evaluation log NaN, so `CSVLogger`
       and `History` keep the columns; place the probe before `CSVLogger` /
       `TensorBoard` in the callbacks list.

    The cost is one inference pass over both subsets and `probe_epochs`
    cheap passes of a linear layer. By default the probe batch-normalises
    the features (non-affine), making it insensitive to the feature scale,
    which drifts during pretraining. `history` holds the evaluated epochs'
    `{"epoch", "probe_accuracy", ...}` rows (for plotting the curve).

    Args:
        train_data: `(images, labels)` arrays (or a finite `tf.data.Dataset`
            of such batches) to train the probe on; images float32 in [0, 1]
            or uint8 in [0, 255]; labels integer or one-hot.
        test_data: the same, to measure the accuracy on.
        num_classes: number of classes (default: inferred from the labels).
        probe_epochs: passes over the training features per evaluation.
        batch_size: batch size of the probe's training and of the feature
            extraction.
        optimizer: the probe's optimizer (name or instance; default
            `Adam(1e-3)`).
        use_batch_norm: normalise features before the linear map.
        every: evaluate every `every` epochs (and at the last epoch).
        encoder: the backbone to probe (default: `model.encoder`).

    Example:

    ```python
    probe = kps.callbacks.OnlineLinearProbe((x_train[:10000], y_train[:10000]),
                                            (x_test, y_test))
    model.fit(ssl_dataset, epochs=100, callbacks=[probe])
    # history.history["probe_accuracy"], probe.history
    ```
    """

    def __init__(
        self,
        train_data,
        test_data,
        num_classes=None,
        probe_epochs=5,
        batch_size=256,
        optimizer=None,
        use_batch_norm=True,
        every=1,
        encoder=None,
    ):
        super().__init__()
        if not isinstance(probe_epochs, int) or probe_epochs < 1:
            raise ValueError(
                f"`probe_epochs` must be an int >= 1. Received: probe_epochs={probe_epochs!r}"
            )
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"`every` must be an int >= 1. Received: every={every!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be an int >= 1. Received: batch_size={batch_size!r}"
            )
        self.train_images, self.train_labels = _labelled_arrays(train_data, "train_data")
        self.test_images, self.test_labels = _labelled_arrays(test_data, "test_data")
        if num_classes is None:
            num_classes = int(max(self.train_labels.max(), self.test_labels.max())) + 1
        self.num_classes = int(num_classes)
        self.probe_epochs = probe_epochs
        self.batch_size = batch_size
        self.optimizer = (
            keras.optimizers.Adam(1e-3) if optimizer is None else keras.optimizers.get(optimizer)
        )
        self.use_batch_norm = use_batch_norm
        self.every = every
        self.encoder = encoder
        self.probe = None
        self.history = []

    def _build_probe(self, feature_dim):
        probe = keras.Sequential(
            [
                keras.Input((feature_dim,), name="features"),
                LinearClassifier(
                    self.num_classes, use_batch_norm=self.use_batch_norm, name="probe"
                ),
            ],
            name="online_linear_probe",
        )
        probe.compile(
            optimizer=self.optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return probe

    def train_and_evaluate(self, train_features, test_features):
        """Trains the probe on features (warm start) and returns its metrics."""
        if self.probe is None:
            self.probe = self._build_probe(train_features.shape[1])
        self.probe.fit(
            train_features,
            self.train_labels,
            batch_size=self.batch_size,
            epochs=self.probe_epochs,
            shuffle=True,
            verbose=0,
        )
        logits = self.probe.predict(test_features, batch_size=self.batch_size, verbose=0)
        logits = np.asarray(keras.ops.convert_to_numpy(logits))
        metrics = {"probe_accuracy": top_k_accuracy(logits, self.test_labels, k=1)}
        if self.num_classes > 5:
            metrics["probe_top5"] = top_k_accuracy(logits, self.test_labels, k=5)
        return metrics

    def evaluate(self):
        """Embeds both subsets with the current backbone, trains and scores the probe."""
        encoder = _resolve_encoder(self.model, self.encoder, type(self).__name__)
        train_features = _encode(encoder, self.train_images, self.batch_size)
        test_features = _encode(encoder, self.test_images, self.batch_size)
        return self.train_and_evaluate(train_features, test_features)

    def on_epoch_end(self, epoch, logs=None):
        if _is_evaluation_epoch(epoch, self.every, self.params):
            metrics = self.evaluate()
            self.history.append(dict(epoch=epoch + 1, **metrics))
        else:
            metrics = {"probe_accuracy": math.nan}
            if self.num_classes > 5:
                metrics["probe_top5"] = math.nan
        if logs is not None:
            logs.update(metrics)
