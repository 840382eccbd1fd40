"""A linear probe on frozen backbone features, trained alongside pretraining."""

import keras
import numpy as np

from keras_pid_ssl.callbacks.labelled_evaluation import LabelledEvaluation
from keras_pid_ssl.heads.linear_classifier import LinearClassifier
from keras_pid_ssl.utils.validation import check_int


class OnlineLinearProbe(LabelledEvaluation):
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
    `{"epoch", "probe_accuracy", ...}` rows (for plotting the curve). The
    labels are checked once, here, on the host: integers in
    `[0, num_classes)` (a label outside would otherwise fail inside the
    probe's compiled step).

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

    prefix = "probe"

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
        check_int("probe_epochs", probe_epochs, 1)
        super().__init__(train_data, test_data, num_classes, every, batch_size, encoder)
        # A linear classifier needs two classes (also when inferred from the labels).
        check_int("num_classes", self.num_classes, 2)
        self.probe_epochs = probe_epochs
        self.optimizer = (
            keras.optimizers.Adam(1e-3) if optimizer is None else keras.optimizers.get(optimizer)
        )
        self.use_batch_norm = use_batch_norm
        self.probe = None

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
        return self.accuracy_metrics(np.asarray(keras.ops.convert_to_numpy(logits)))

    def evaluate(self):
        """Embeds both subsets with the current backbone, trains and scores the probe."""
        return self.train_and_evaluate(*self.features())
