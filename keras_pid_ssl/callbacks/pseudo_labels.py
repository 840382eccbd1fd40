"""k-means pseudo-labels of backbone features, refreshed during training."""

import math
import time
import warnings

import keras
import numpy as np

from keras_pid_ssl.config import scaled_epochs
from keras_pid_ssl.losses.pseudo_label_pid import PseudoLabelPIDLoss
from keras_pid_ssl.utils.optional import import_tensorflow
from keras_pid_ssl.utils.validation import check_int


def _tf():
    return import_tensorflow("PseudoLabelRefresh (labels for tf.data)", for_data=True)


def _check_images(images):
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        raise ValueError(
            "`images` must be a NumPy array (num_images, height, width, channels), as "
            f"kps.data.load returns. Received: {type(images).__name__}"
        )
    if len(images.shape) != 4 or images.shape[-1] not in (1, 3) or images.shape[0] < 2:
        raise ValueError(
            "`images` must have shape (num_images >= 2, height, width, 1 or 3). "
            f"Received shape={tuple(images.shape)}"
        )
    if not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(
            f"`images` must be uint8 in [0, 255] or float in [0, 1]. Received dtype={images.dtype}"
        )
    return images


def align_labels(labels, reference, num_clusters):
    """Renames the clusters of `labels` to agree best with `reference`.

    k-means numbers its clusters arbitrarily, so two clusterings of almost the
    same features can differ by a permutation of names; the heads trained on
    the old names would then be wrong for every image. The permutation that
    maximises the number of images keeping their label is a linear
    assignment on the contingency table (Hungarian algorithm, SciPy's
    `linear_sum_assignment`).

    Example:

    >>> align_labels(np.array([1, 1, 0, 2]), np.array([0, 0, 1, 2]), 3)
    array([0, 0, 1, 2], dtype=int32)
    """
    from scipy.optimize import linear_sum_assignment

    contingency = np.zeros((num_clusters, num_clusters), np.int64)
    np.add.at(contingency, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-contingency)
    mapping = np.empty(num_clusters, np.int64)
    mapping[rows] = cols
    return mapping[labels].astype(np.int32)


class PseudoLabelRefresh(keras.callbacks.Callback):
    """k-means pseudo-labels of the training set for `PseudoLabelPIDModel`.

    The protocol of the follow-up paper (arXiv 2412.02121, docs/spec.md, section 5):
    after `warmup_epochs` of base loss, and then every `recluster_every`
    epochs, at the beginning of the epoch, the current backbone
    (`model.encoder`, inference mode, no augmentation, batches of
    `batch_size`) embeds `images`; the features are L2-normalised
    (`normalize`) and clustered by k-means++ into `num_clusters` clusters.
    The new cluster names are aligned with the previous labels
    (`align_labels`) so that the heads keep their meaning across refreshes.

    Clustering uses scikit-learn's `KMeans` (k-means++ seeding, Lloyd
    iterations, seeded by `seed`): the features are already NumPy arrays on
    the host at that point, it runs once every few epochs, and it is a
    tested, well-kept implementation, whereas a `keras.ops` version would only
    add code to test on three backends.

    The labels live in `labels`, an int32 `tf.Variable` on the CPU with one
    entry per image. `kps.data.ssl_dataset(images, pseudo_labels=refresh.labels)`
    looks each batch's labels up by image index, so the pipeline yields the
    new labels from the next epoch's iterator on, without being rebuilt, on
    every backend (`fit` starts a fresh iterator each epoch; with
    `steps_per_epoch` the prefetched batches, a few at most, may still carry
    the old labels).

    At every epoch the callback also sets the model's `supervision_weight`
    (0 before the first clustering, then log-linear from
    `supervision_weight_range[0]` to `[1]` between the first clustering epoch
    and the last epoch), `label_entropy` (H(T) of the label histogram) and
    `pseudo_labels_ready`. The schedule is a function of the epoch index,
    and `get_state()` / `set_state()` carry the labels through
    `ResumableBackup(extra_state=refresh)`, so a resumed run continues with
    the same labels and weights (if it resumes without them, the callback
    clusters again, with a warning).

    Epoch logs get `pseudo_label_changed`: the share of images whose
    (aligned) label changed at this epoch's refresh (NaN without refresh; 1
    at the first). `history` holds one row per refresh.

    Args:
        images: the training images, NumPy `(num_images, height, width,
            channels)`, uint8 in [0, 255] or float in [0, 1], in the order the
            data pipeline indexes them (resized to the encoder's input size
            if they differ).
        epochs: total epochs of the run (for the defaults and the ramp).
        num_clusters: K (default: the model's `num_clusters`; the recipe
            uses the number of classes when known, else 100).
        recluster_every: epochs between refreshes (default
            `max(1, round(epochs / 10))`: 100 of 1000 as in the follow-up).
        warmup_epochs: epochs of base loss before the first clustering
            (default `kps.config.scaled_epochs(epochs)`, like `PIDProtocol`).
        supervision_weight_range: `(start, end)` of the log-linear ramp.
        batch_size: images per forward pass when embedding.
        normalize: L2-normalise the features before k-means.
        max_iter: k-means iterations per run.
        seed: k-means seed (same features and seed: same labels).
        verbose: print one line per refresh.

    Example:

    ```python
    refresh = kps.callbacks.PseudoLabelRefresh(images, epochs=100, recluster_every=10)
    dataset = kps.data.ssl_dataset(images, pseudo_labels=refresh.labels)
    backup = kps.callbacks.ResumableBackup("runs/exp/backup", extra_state=refresh)
    model.fit(dataset, epochs=100, callbacks=[refresh, backup])
    ```
    """

    def __init__(
        self,
        images,
        epochs,
        num_clusters=None,
        recluster_every=None,
        warmup_epochs=None,
        supervision_weight_range=(1e-5, 1e-1),
        batch_size=256,
        normalize=True,
        max_iter=300,
        seed=0,
        verbose=0,
    ):
        super().__init__()
        self.images = _check_images(images)
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"`epochs` must be a positive int. Received: epochs={epochs!r}")
        recluster_every = max(1, round(epochs / 10)) if recluster_every is None else recluster_every
        warmup_epochs = scaled_epochs(epochs) if warmup_epochs is None else warmup_epochs
        for name, value, minimum in (
            ("recluster_every", recluster_every, 1),
            ("warmup_epochs", warmup_epochs, 0),
            ("batch_size", batch_size, 1),
            ("max_iter", max_iter, 1),
        ):
            check_int(name, value, minimum)
        check_int("num_clusters", num_clusters, 2, len(images), allow_none=True)
        low, high = (float(v) for v in supervision_weight_range)
        if not 0 < low <= high:
            raise ValueError(
                "`supervision_weight_range` must be (start, end) with 0 < start <= end "
                f"(the ramp is log-linear). Received: {supervision_weight_range!r}"
            )
        self.epochs = epochs
        self.num_clusters = num_clusters
        self.recluster_every = recluster_every
        self.warmup_epochs = warmup_epochs
        self.supervision_weight_range = (low, high)
        self.batch_size = batch_size
        self.normalize = bool(normalize)
        self.max_iter = max_iter
        self.seed = int(seed)
        self.verbose = verbose
        tf = _tf()
        with tf.device("/CPU:0"):
            self.labels = tf.Variable(
                np.zeros(len(images), np.int32), trainable=False, name="pseudo_labels"
            )
        self.has_labels = False
        self.label_entropy = 0.0
        self.refresh_epochs = []
        self.history = []
        self._changed = math.nan

    # Schedule ---------------------------------------------------------------

    def is_refresh_epoch(self, epoch):
        """Whether the labels are recomputed at the beginning of 0-based `epoch`."""
        offset = epoch - self.warmup_epochs
        return offset >= 0 and offset % self.recluster_every == 0

    def supervision_weight_at(self, epoch):
        """The supervision weight (the follow-up's alpha) during 0-based `epoch`."""
        if epoch < self.warmup_epochs:
            return 0.0
        low, high = self.supervision_weight_range
        span = self.epochs - 1 - self.warmup_epochs
        progress = 0.0 if span <= 0 else min(1.0, (epoch - self.warmup_epochs) / span)
        return math.exp(math.log(low) + progress * (math.log(high) - math.log(low)))

    # Clustering -------------------------------------------------------------

    def _resolved_num_clusters(self):
        if self.num_clusters is not None:
            return self.num_clusters
        loss = self._pseudo_label_loss()
        if loss is None:
            raise ValueError("Pass `num_clusters` or use a model with a PseudoLabelPIDLoss.")
        return loss.num_clusters

    def embed(self, encoder=None):
        """Backbone features of `images`, NumPy `(num_images, dim)` float32."""
        encoder = encoder or self.model.encoder
        input_shape = tuple(encoder.input_shape[1:3])
        features = []
        for start in range(0, len(self.images), self.batch_size):
            batch = np.asarray(self.images[start : start + self.batch_size])
            batch = (
                batch.astype("float32") / 255.0
                if batch.dtype == np.uint8
                else batch.astype("float32")
            )
            if None not in input_shape and batch.shape[1:3] != input_shape:
                # The "clean" target view: the image resized to the training size.
                batch = keras.ops.image.resize(batch, input_shape, antialias=True)
            # `predict`, not `predict_on_batch`: the latter returns one copy of the
            # outputs per replica under a MirroredStrategy (Keras 3.15).
            features.append(np.asarray(encoder.predict(batch, batch_size=len(batch), verbose=0)))
        return np.concatenate(features).astype("float32")

    def cluster(self, features, reference=None):
        """k-means++ labels (int32) of `features`, aligned with `reference` if given."""
        from sklearn.cluster import KMeans

        features = np.asarray(features, np.float64)
        if self.normalize:
            features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        num_clusters = self._resolved_num_clusters()
        kmeans = KMeans(
            n_clusters=num_clusters,
            init="k-means++",
            n_init=1,
            max_iter=self.max_iter,
            random_state=self.seed,
        )
        with warnings.catch_warnings():
            # Collapsed features give fewer distinct clusters than K; the
            # labels are still valid (some classes are empty).
            warnings.filterwarnings("ignore", message="Number of distinct clusters")
            labels = kmeans.fit_predict(features).astype(np.int32)
        if reference is not None:
            labels = align_labels(labels, reference, num_clusters)
        return labels

    def refresh(self, epoch=None):
        """Embeds, clusters and publishes new labels; returns them."""
        start = time.time()
        previous = self.labels.numpy() if self.has_labels else None
        labels = self.cluster(self.embed(), reference=previous)
        self._publish(labels)
        self._changed = 1.0 if previous is None else float(np.mean(labels != previous))
        sizes = np.bincount(labels, minlength=self._resolved_num_clusters())
        row = {
            "epoch": epoch,
            "seconds": time.time() - start,
            "changed_fraction": self._changed,
            "label_entropy": self.label_entropy,
            "smallest_cluster": int(sizes.min()),
            "largest_cluster": int(sizes.max()),
        }
        self.history.append(row)
        if epoch is not None:
            self.refresh_epochs.append(int(epoch))
        if self.verbose:
            print(
                f"PseudoLabelRefresh: epoch {epoch}: k-means K={len(sizes)} on "
                f"{len(labels)} images in {row['seconds']:.1f} s; H(T)={self.label_entropy:.3f} "
                f"nats; cluster sizes {row['smallest_cluster']}..{row['largest_cluster']}; "
                f"{100 * self._changed:.1f}% of labels changed"
            )
        return labels

    def _publish(self, labels):
        labels = np.asarray(labels, np.int32)
        if labels.shape != (len(self.images),):
            raise ValueError(
                f"Expected {len(self.images)} labels, one per image; received shape {labels.shape}."
            )
        self.labels.assign(labels)
        histogram = np.bincount(labels) / len(labels)
        histogram = histogram[histogram > 0]
        self.label_entropy = float(-np.sum(histogram * np.log(histogram)))
        self.has_labels = True
        self._sync_model()

    def _pseudo_label_loss(self):
        loss = getattr(self.model, "ssl_loss", None)
        return loss if isinstance(loss, PseudoLabelPIDLoss) else None

    def _sync_model(self):
        loss = self._pseudo_label_loss()
        if loss is not None:
            loss.set_state(ready=float(self.has_labels), label_entropy=self.label_entropy)

    # Keras hooks ------------------------------------------------------------

    def on_train_begin(self, logs=None):
        loss = self._pseudo_label_loss()
        if loss is None:
            raise ValueError(
                "PseudoLabelRefresh needs a model trained with a kps.losses.PseudoLabelPIDLoss "
                f"(e.g. kps.models.PseudoLabelPIDModel). Received {type(self.model).__name__}."
            )
        if self.num_clusters is not None and self.num_clusters != loss.num_clusters:
            raise ValueError(
                f"`num_clusters`={self.num_clusters} but the model's heads have "
                f"{loss.num_clusters} classes; use the same K for both."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._changed = math.nan
        if self.is_refresh_epoch(epoch):
            self.refresh(epoch)
        elif epoch > self.warmup_epochs and not self.has_labels:
            warnings.warn(
                f"PseudoLabelRefresh: resumed at epoch {epoch} without pseudo-labels "
                "(pass the callback as ResumableBackup(extra_state=...)); clustering now.",
                stacklevel=2,
            )
            self.refresh(epoch)
        self._sync_model()
        self._pseudo_label_loss().set_state(supervision_weight=self.supervision_weight_at(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["pseudo_label_changed"] = self._changed

    # Resume (ResumableBackup's extra_state) ----------------------------------

    def get_state(self):
        """JSON-serialisable state: the labels and the refresh epochs."""
        return {
            "labels": self.labels.numpy().tolist() if self.has_labels else None,
            "refresh_epochs": list(self.refresh_epochs),
        }

    def set_state(self, state):
        """Restores `get_state()`'s output."""
        self.refresh_epochs = list(state.get("refresh_epochs", []))
        if state.get("labels") is not None:
            self._publish(np.asarray(state["labels"], np.int32))
