"""Detects representation collapse from embeddings of a fixed batch."""

import warnings

import keras
import numpy as np

from keras_pid_ssl.utils.validation import check_in_range
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import check_non_negative


def collapse_statistics(embeddings):
    """`embedding_std` and `effective_rank` of a `(batch, dim)` embedding array.

    - `embedding_std`: the per-dimension standard deviation of the
      l2-normalised embeddings, averaged over dimensions and multiplied by
      `sqrt(dim)` (SimSiam's collapse check): about 1 for well-spread
      embeddings, 0 when all samples map to one point.
    - `effective_rank`: `exp(entropy(p))` with `p` the normalised eigenvalues
      of the embedding covariance (Roy & Vetterli, 2007): between 1 (all
      variance in one direction, dimensional collapse) and `dim`.
    """
    z = np.asarray(embeddings, dtype="float64")
    dim = z.shape[1]
    normed = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    std = float(normed.std(axis=0).mean() * np.sqrt(dim))
    eigenvalues = np.clip(np.linalg.eigvalsh(np.cov(z, rowvar=False)), 0, None)
    total = eigenvalues.sum()
    if total <= 0:
        return {"embedding_std": std, "effective_rank": 1.0}
    p = eigenvalues[eigenvalues > 0] / total
    return {"embedding_std": std, "effective_rank": float(np.exp(-(p * np.log(p)).sum()))}


class CollapseMonitor(keras.callbacks.Callback):
    """Logs `embedding_std` and `effective_rank` each epoch; warns on collapse.

    The projector embeddings (`model.predict`) of a fixed batch of images are
    measured with `collapse_statistics`. A warning is issued when
    `embedding_std < std_threshold` (complete collapse) or
    `effective_rank < rank_fraction * dim` (dimensional collapse).

    Args:
        images: float32 images in [0, 1], `(batch, height, width, channels)`
            (a few hundred are enough).
        std_threshold: warn below this normalised std.
        rank_fraction: warn below this share of the embedding width.
        every: run every `every` epochs.

    Example:

    ```python
    model.fit(dataset, epochs=100, callbacks=[kps.callbacks.CollapseMonitor(images[:512] / 255.0)])
    ```
    """

    def __init__(self, images, std_threshold=0.1, rank_fraction=0.01, every=1):
        super().__init__()
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[0] < 2:
            raise ValueError(
                "`images` must be a (batch >= 2, height, width, channels) array. "
                f"Received shape {images.shape}."
            )
        check_non_negative("std_threshold", std_threshold)
        check_in_range("rank_fraction", rank_fraction, 0, 1)
        check_int("every", every, 1)
        self.images = images
        self.std_threshold = std_threshold
        self.rank_fraction = rank_fraction
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        embeddings = self.model.predict(self.images, batch_size=256, verbose=0)
        stats = collapse_statistics(embeddings)
        if logs is not None:
            logs.update(stats)
        dim = embeddings.shape[1]
        if stats["embedding_std"] < self.std_threshold:
            warnings.warn(
                f"Epoch {epoch + 1}: the embeddings are collapsing (normalised std "
                f"{stats['embedding_std']:.3g} < {self.std_threshold}). Check the loss "
                "weights, the learning rate and the augmentations.",
                stacklevel=2,
            )
        elif stats["effective_rank"] < self.rank_fraction * dim:
            warnings.warn(
                f"Epoch {epoch + 1}: dimensional collapse (effective rank "
                f"{stats['effective_rank']:.3g} of {dim} dimensions).",
                stacklevel=2,
            )
