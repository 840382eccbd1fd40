"""`SSLModel`: an encoder and a projector trained by a two-view SSL loss."""

import keras
import numpy as np
from keras import ops

from keras_pid_ssl.distribute.replicas import scale_loss_for_replicas
from keras_pid_ssl.losses.base import SSLLoss
from keras_pid_ssl.utils.validation import check_views


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class SSLModel(keras.Model):
    """Joint-embedding SSL model trained with the stock `fit`.

    Feed `fit` a dataset of `(view1, view2)` batches: two augmentations of the
    same images, float32 `(batch_size, height, width, channels)`. Keras unpacks
    such a batch as `(x, y)`; this model reads them back as the two views in
    `compute_loss`, which is the only training hook it overrides, so one code
    path trains on TensorFlow, JAX and PyTorch. Each view goes through the
    network separately, as in the official Barlow Twins and VICReg code (batch
    norm statistics are per view).

    Every term of the loss is reported as a metric (`fit`'s history and
    progress bar show e.g. `invariance` and `redundancy_reduction`).
    `model(images)` and `model.predict(images)` return projector embeddings;
    `model.encoder` is the backbone to take downstream.

    Args:
        encoder: a `keras.Model` mapping images to feature vectors.
        projector: a layer mapping features to embeddings (e.g. `Projector`).
        loss: an `SSLLoss` (e.g. `BarlowTwinsLoss()`, `VICRegLoss()`).
        input_range: `(low, high)` of the float pixel values the encoder
            expects (default `(0, 1)`, what `kps.data` produces); `fit` checks
            the first batch against it and refuses e.g. 0-255 floats or
            uint8 images with a clear error. `None` turns the check off (for
            inputs normalised otherwise).

    Example:

    ```python
    import keras_pid_ssl as kps
    encoder = kps.backbones.ResNet18(input_shape=(32, 32, 3), variant="cifar")
    model = kps.SSLModel(
        encoder,
        kps.heads.Projector(hidden_dims=(2048, 2048), output_dim=2048),
        loss=kps.losses.BarlowTwinsLoss(),
    )
    model.compile(optimizer="adamw")
    model.fit(two_view_dataset, epochs=10)  # yields (view1, view2) batches
    ```
    """

    def __init__(self, encoder, projector, loss, input_range=(0.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.layers.Layer):
            raise ValueError(f"`encoder` must be a Keras model or layer. Received: {encoder!r}")
        if not isinstance(projector, keras.layers.Layer):
            raise ValueError(f"`projector` must be a Keras layer. Received: {projector!r}")
        if not isinstance(loss, SSLLoss):
            raise ValueError(
                "`loss` must be an SSL loss such as kps.losses.BarlowTwinsLoss(). "
                f"Received: loss={loss!r}"
            )
        self.encoder = encoder
        self.projector = projector
        self.ssl_loss = loss
        self.input_range = None if input_range is None else tuple(float(v) for v in input_range)
        self.term_trackers = {name: keras.metrics.Mean(name=name) for name in loss.term_names}
        self._build_projector()

    def _build_projector(self):
        feature_shape = getattr(self.encoder, "output_shape", None)
        if feature_shape is not None and not self.projector.built:
            self.projector.build(feature_shape)
        if self.projector.built:
            self.built = True

    @property
    def num_views(self):
        return 2

    def call(self, inputs, training=None):
        check_views(type(self).__name__, inputs)
        self._check_channels(inputs)
        features = self.encoder(inputs, training=training)
        return self.projector(features, training=training)

    def _check_channels(self, images):
        # Keras would fail inside the first conv layer, naming that layer.
        try:
            expected = self.encoder.input_shape[-1]
        except (AttributeError, ValueError):  # a subclassed encoder: no fixed input
            return
        channels = tuple(images.shape)[-1]
        if expected is not None and channels is not None and channels != expected:
            raise ValueError(
                f"`{type(self).__name__}`'s encoder takes images with {expected} channel(s) "
                f"(input shape {tuple(self.encoder.input_shape)}); the views have {channels} "
                f"(shape {tuple(images.shape)}). Convert them with "
                "kps.data.convert_channels, or build the encoder for this input."
            )

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after checking the first batch of views (see `input_range`)."""
        self._check_first_batch(x, y)
        return super().fit(x, y, *args, **kwargs)

    def _check_first_batch(self, x, y):
        if self.input_range is None:
            return
        if hasattr(x, "take") and hasattr(x, "element_spec"):  # tf.data.Dataset
            batch = next(iter(x.take(1)), None)
            views = [] if batch is None else list(batch) if isinstance(batch, tuple) else [batch]
        elif isinstance(x, np.ndarray):
            views = [v[:64] for v in (x, y) if isinstance(v, np.ndarray)]
        else:
            return
        low, high = self.input_range
        views = [v for v in views if len(getattr(v, "shape", ())) == 4]
        for i, view in enumerate(views):
            view = np.asarray(view)
            if not np.issubdtype(view.dtype, np.floating):
                raise ValueError(
                    f"{type(self).__name__}.fit expects float images in [{low:g}, {high:g}]; "
                    f"view {i + 1} has dtype {view.dtype}. Convert with images / 255 "
                    "(kps.data.ssl_dataset does), or pass input_range=None."
                )
            vmin, vmax = float(view.min()), float(view.max())
            tolerance = 1e-3 * (high - low)
            if vmin < low - tolerance or vmax > high + tolerance:
                raise ValueError(
                    f"{type(self).__name__}.fit expects float images in [{low:g}, {high:g}]; "
                    f"view {i + 1} has values in [{vmin:g}, {vmax:g}]"
                    + (" (0-255 pixels? divide by 255)" if vmax > 2 else "")
                    + ". Pass input_range=None if your inputs are normalised otherwise."
                )

    def _unpack_views(self, x, y, sample_weight):
        # Keras unpacks a batch (v1, v2[, v3]) as (x, y[, sample_weight]).
        views = [v for v in (x, y, sample_weight) if v is not None]
        if len(views) != self.num_views:
            raise ValueError(
                f"{type(self).__name__} expects batches of {self.num_views} image "
                f"views, e.g. {self._view_names()}; received {len(views)}. Build "
                "the dataset with kps.data.ssl_dataset or yield tuples of views."
            )
        check_views(type(self).__name__, *views)
        return views

    def _view_names(self):
        return "(view1, view2)"

    def _update_trackers(self, terms):
        for name, tracker in self.term_trackers.items():
            tracker.update_state(terms[name])

    def _regularization_loss(self):
        if self.losses:
            return ops.sum(ops.stack([ops.cast(l, "float32") for l in self.losses]))
        return 0.0

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        view1, view2 = self._unpack_views(x, y, sample_weight)
        z1 = y_pred if y_pred is not None else self(view1, training=training)
        z2 = self(view2, training=training)
        terms = self.ssl_loss.terms(z1, z2)
        self._update_trackers(terms)
        # Every replica computed the global-batch loss: see kps.distribute.
        return scale_loss_for_replicas(terms["loss"] + self._regularization_loss())

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            projector=keras.saving.serialize_keras_object(self.projector),
            loss=keras.saving.serialize_keras_object(self.ssl_loss),
            input_range=self.input_range,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "projector", "loss"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
