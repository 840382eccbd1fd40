"""`SSLModel`: an encoder and a projector trained by a two-view SSL loss."""

import inspect
import itertools
import json
import math

import keras
import numpy as np
from keras import ops

from keras_pid_ssl.augment.presets import resolve_views
from keras_pid_ssl.distribute.replicas import num_replicas_in_sync
from keras_pid_ssl.distribute.replicas import scale_loss_for_replicas
from keras_pid_ssl.losses.base import SSLLoss
from keras_pid_ssl.utils.batches import first_batch
from keras_pid_ssl.utils.validation import check_views
from keras_pid_ssl.utils.validation import static_shape


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class SSLModel(keras.Model):
    """Joint-embedding SSL model trained with the stock `fit`.

    Feed `fit` batches that are dicts of named views: `{"view1": ...,
    "view2": ...}`, two augmentations of the same images, float32 `(batch_size,
    height, width, channels)` (what `kps.data.ssl_dataset(..., views="two")`
    yields; NumPy arrays work too: `model.fit({"view1": a, "view2": b},
    batch_size=256)`). Keras passes such a batch whole to `call`, which
    embeds each view, and to `compute_loss`, the only training hook this model
    overrides, so one code path trains on TensorFlow, JAX and PyTorch. Each
    view goes through the network separately, as in the official Barlow Twins
    and VICReg code (batch norm statistics are per view).

    Every term of the loss is reported as a metric (`fit`'s history and
    progress bar show e.g. `invariance` and `redundancy_reduction`). The
    loss is NaN whenever an embedding is not finite (`nan_guard`), so
    `keras.callbacks.TerminateOnNaN` stops a diverged run on every backend.
    Every batch needs at least 2 images (batch statistics): `fit` refuses a
    `tf.data.Dataset` of unknown batch size (batch it with
    `drop_remainder=True`) and arrays whose last batch would hold one image.
    `model(images)` and `model.predict(images)` return projector embeddings
    of a batch of images; `model(batch)` on a dict of views returns a dict of
    embeddings; `model.encoder` is the backbone to take downstream.

    With `augment` (e.g. `augment="cifar"`), the model draws the views itself,
    inside its train step, on the accelerator: feed it batches of the images
    alone, `{"images": uint8 (batch_size, height, width, channels)}` (what
    `kps.data.ssl_dataset(images, views="images")` yields), which it
    converts to float `[0, 1]` and augments with per-image random parameters
    (crop, flip, colour jitter, grayscale, blur, solarize: the preset's).
    Training step `k` draws what `(the augmentation's seeds, k)` decide
    (`kps.augment.Views(..., step=k)`; under `tf.distribute`, replica `r` of
    `n` uses `k * n + r`), and `k` is a model variable, saved in weights and
    backups, so a resumed run draws the views an uninterrupted one draws.
    `model(images)`, `predict` and export are not augmented.

    Args:
        encoder: a `keras.Model` mapping images to feature vectors.
        projector: a layer mapping features to embeddings (e.g. `Projector`).
        loss: an `SSLLoss` (e.g. `BarlowTwinsLoss()`, `VICRegLoss()`).
        input_range: `(low, high)` of the float pixel values the encoder
            expects (default `(0, 1)`, what `kps.data` produces); `fit` checks
            the first batch against it and refuses e.g. 0-255 floats or
            uint8 images with a clear error. `None` turns the check off (for
            inputs normalised otherwise).
        augment: `None` (batches bring their views), or the augmentation the
            model draws on the device: a preset name (`"cifar"`,
            `"imagenet"`, `"grayscale"`; views of the encoder's input size),
            a `kps.augment.Views`, or a Keras layer applied to each view.

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
    model.fit(two_view_dataset, epochs=10)  # yields {"view1", "view2"} batches
    ```

    With the views drawn on the device:

    ```python
    model = kps.SSLModel(encoder, projector, kps.losses.BarlowTwinsLoss(), augment="cifar")
    model.compile(optimizer="adamw", jit_compile=True)
    model.fit(kps.data.ssl_dataset(images, views="images", batch_size=256), epochs=10)
    ```
    """

    def __init__(self, encoder, projector, loss, input_range=(0.0, 1.0), augment=None, **kwargs):
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
        # Batch structures `check_batch` has seen (a set: not tracked by Keras).
        self.checked_structures = set()
        self._build_projector()
        self._set_augment(augment)

    def _set_augment(self, augment):
        self.augment = None
        self.augment_config = None  # JSON text of the `augment` argument
        if augment is None:
            return
        self.augment = resolve_views(
            augment, image_size=self._encoder_image_size(), target=self.augment_target_view()
        )
        self.augment_config = json.dumps(
            augment if isinstance(augment, str) else keras.saving.serialize_keras_object(augment)
        )
        # The training step the next views are keyed on (saved with the weights).
        self.augment_step = keras.Variable(
            0, dtype="int32", trainable=False, aggregation="none", name="augment_step"
        )

    def _encoder_image_size(self):
        try:
            shape = tuple(self.encoder.input_shape)
        except (AttributeError, ValueError):  # a subclassed encoder: no fixed input
            return None
        size = shape[1:3]
        return size if len(shape) == 4 and all(isinstance(d, int) for d in size) else None

    def augment_target_view(self):
        """The target view `augment` must also draw (`None`: two views)."""
        return None

    def _build_projector(self):
        feature_shape = getattr(self.encoder, "output_shape", None)
        if feature_shape is not None and not self.projector.built:
            self.projector.build(feature_shape)
        if self.projector.built:
            self.built = True

    @property
    def view_keys(self):
        """The keys every batch must hold."""
        return ("images",) if self.augment is not None else self.views_keys

    @property
    def views_keys(self):
        """The keys of a batch that brings its views (no `augment` at work)."""
        return ("view1", "view2")

    def draw_views(self, batch, training=None, step=None):
        """The views `augment` draws from `batch["images"]` (uint8 or float [0, 1]).

        Returns `{"view1", "view2"}` (and `"target"` for a PID target view),
        float32. With `training=True` the draw is keyed on the model's
        training step, which it advances (one step per call, and per
        replica under `tf.distribute`). Otherwise it is keyed on `step` if
        given (fixed views, e.g. for a monitor: the counter is untouched),
        else the generators run on.
        """
        images = batch["images"]
        scale = 255.0 if "int" in str(images.dtype) else 1.0
        images = ops.cast(images, "float32") / scale
        if training:
            replica, replicas = _replica_position()
            step = self.augment_step.value * replicas + replica
            self.augment_step.assign_add(1)
        views = self.augment(images, training=True, step=step)
        keys = ("view1", "view2", "target")[: len(views)]
        return {key: ops.cast(view, "float32") for key, view in zip(keys, views, strict=True)}

    def call(self, inputs, training=None):
        if isinstance(inputs, dict) and self.augment is not None and "images" in inputs:
            self.check_batch({"images": inputs["images"]})
            views = self.draw_views(inputs, training)
            labels = {"label": inputs["label"]} if "label" in inputs else {}
            self.check_batch({**views, **labels})
            outputs = {key: self._embed(views[key], training) for key in ("view1", "view2")}
            if "target" in views:
                outputs["target_view"] = views["target"]
            return outputs
        if isinstance(inputs, dict):
            self.check_batch(inputs)
            return {key: self._embed(inputs[key], training) for key in ("view1", "view2")}
        self.check_batch({"images": inputs})
        return self._embed(inputs, training)

    def _embed(self, images, training):
        return self.projector(self.encoder(images, training=training), training=training)

    def check_batch(self, batch):
        """Checks a dict of image views once per structure (keys, shapes, dtypes).

        Called by `call`; a compiled step traces it once, and an eager step
        skips structures it has seen, so the checks cost nothing per step.
        """
        signature = tuple(
            (key, static_shape(value), str(getattr(value, "dtype", type(value))))
            for key, value in sorted(batch.items())
        )
        if signature in self.checked_structures:
            return
        name = type(self).__name__
        if "images" not in batch:
            # Views and targets: brought by the batch, or drawn by `augment`.
            missing = [key for key in self.views_keys if key not in batch]
            if missing:
                raise ValueError(
                    f"{name} expects batches that are dicts with keys {list(self.view_keys)}; "
                    f"this one has {sorted(batch)}, missing {missing}. Build the dataset "
                    "with kps.data.ssl_dataset, or yield such dicts."
                )
        views = [batch[key] for key in batch if key != "label"]
        check_views(name, *views)
        for view in views:
            self._check_channels(view)
        self.checked_structures.add(signature)

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
        if y is not None:
            raise ValueError(
                f"{type(self).__name__}.fit takes batches of named views as `x` "
                '(e.g. {"view1": ..., "view2": ...}) and no `y`. Received y of type '
                f"{type(y).__name__}."
            )
        if isinstance(x, (tuple, list)):
            raise ValueError(
                f"{type(self).__name__}.fit takes batches of named views as `x`, a dict "
                f"with keys {list(self.view_keys)} (of arrays, or a dataset yielding such "
                f"dicts); received a {type(x).__name__}. Pass e.g. "
                '{"view1": views1, "view2": views2}.'
            )
        self._check_first_batch(x)
        # Keras's arguments after `y` (batch_size, epochs, ...) may come by
        # position: name them, so the size check sees a positional batch_size.
        named = inspect.signature(super().fit).bind(x, None, *args, **kwargs)
        self._check_batch_sizes(x, named.arguments)
        return super().fit(x, None, *args, **kwargs)

    def _check_batch_sizes(self, x, arguments):
        # Batch statistics need >= 2 images per batch. A last batch of one
        # image would train silently on TensorFlow (an unknown batch dimension
        # hides it) and fail mid-epoch on JAX and PyTorch: refuse it up front.
        name = type(self).__name__
        if hasattr(x, "take") and hasattr(x, "element_spec"):  # tf.data.Dataset
            spec = x.element_spec
            if not isinstance(spec, dict):
                raise ValueError(
                    f"{name}.fit expects a dataset of dicts of views with keys "
                    f"{list(self.view_keys)}; this one yields {spec}. Build it with "
                    "kps.data.ssl_dataset, or map its elements to such dicts."
                )
            for key, view in sorted(spec.items()):
                shape = tuple(getattr(view, "shape", ()) or ())
                if key != "label" and len(shape) == 4 and shape[0] is None:
                    raise ValueError(
                        f"{name}.fit needs datasets whose batches all have one known size: "
                        f"view {key!r} has an unknown batch dimension (element_spec shape "
                        f"{shape}), so a last, smaller batch may hold a single image, which "
                        "batch statistics cannot use (it would train silently on "
                        "TensorFlow and fail mid-epoch on JAX and PyTorch). Batch the "
                        "dataset with .batch(batch_size, drop_remainder=True) "
                        "(kps.data.ssl_dataset does by default)."
                    )
            return
        if not isinstance(x, dict) or not x:
            return
        sizes = {len(value) for value in x.values() if hasattr(value, "__len__")}
        if len(sizes) != 1:
            return  # Keras names inconsistent sizes itself.
        (count,) = sizes
        split = arguments.get("validation_split") or 0.0
        # Keras trains on the first floor(count * (1 - validation_split)) rows.
        count = int(math.floor(count * (1.0 - split))) if split else count
        batch_size = arguments.get("batch_size") or 32  # Keras's default
        if count < 2:
            raise ValueError(
                f"{name}.fit received {count} image(s) to train on; batch statistics need "
                "at least 2 images per batch. Pass more images."
            )
        if count % batch_size == 1:
            # The largest smaller batch size that works, else the smallest larger
            # one (count itself, one batch of all, always does).
            sizes = itertools.chain(range(batch_size - 1, 1, -1), range(batch_size + 1, count + 1))
            suggestion = next(b for b in sizes if count % b != 1)
            raise ValueError(
                f"{name}.fit: {count} images with batch_size={batch_size} leave a last batch "
                f"of 1 image ({count} = {count // batch_size} x {batch_size} + 1), which "
                "batch statistics cannot use. Pass a batch_size that leaves a remainder "
                f"of 0 or at least 2 (e.g. batch_size={suggestion}), or drop one image."
            )

    def _check_first_batch(self, x):
        if self.input_range is None:
            return
        batch = first_batch(x)
        if batch is None:
            return
        if not isinstance(batch, dict):
            raise ValueError(
                f"{type(self).__name__}.fit expects batches that are dicts of views with "
                f"keys {list(self.view_keys)}; received a {type(batch).__name__}. Build the "
                "dataset with kps.data.ssl_dataset, or pass a dict of arrays."
            )
        low, high = self.input_range
        for key, view in batch.items():
            view = np.asarray(view)
            if view.ndim != 4:
                continue
            if self.augment is not None and key == "images" and view.dtype == np.uint8:
                continue
            if not np.issubdtype(view.dtype, np.floating):
                raise ValueError(
                    f"{type(self).__name__}.fit expects float images in [{low:g}, {high:g}]; "
                    f"view {key!r} has dtype {view.dtype}. Convert with images / 255 "
                    "(kps.data.ssl_dataset does), or pass input_range=None."
                )
            if view.size == 0:
                raise ValueError(
                    f"{type(self).__name__}.fit received an empty view {key!r} "
                    f"(shape {view.shape}); it needs at least 2 images per batch."
                )
            if not np.all(np.isfinite(view)):
                raise ValueError(
                    f"{type(self).__name__}.fit expects finite pixel values; view {key!r} "
                    f"holds {int(np.sum(~np.isfinite(view)))} NaN or infinite values. "
                    "Clean the images before training."
                )
            vmin, vmax = float(view.min()), float(view.max())
            tolerance = 1e-3 * (high - low)
            if vmin < low - tolerance or vmax > high + tolerance:
                raise ValueError(
                    f"{type(self).__name__}.fit expects float images in [{low:g}, {high:g}]; "
                    f"view {key!r} has values in [{vmin:g}, {vmax:g}]"
                    + (" (0-255 pixels? divide by 255)" if vmax > 2 else "")
                    + ". Pass input_range=None if your inputs are normalised otherwise."
                )

    def embeddings(self, x, y_pred, training):
        """The online embeddings of the batch `x` (`y_pred` when Keras has them)."""
        if y_pred is None:
            y_pred = self(x, training=training)
        return y_pred["view1"], y_pred["view2"]

    def _update_trackers(self, terms):
        for name, tracker in self.term_trackers.items():
            tracker.update_state(terms[name])

    def _regularization_loss(self):
        if self.losses:
            return ops.sum(ops.stack([ops.cast(l, "float32") for l in self.losses]))
        return 0.0

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        z1, z2 = self.embeddings(x, y_pred, training)
        terms = self.ssl_loss.terms(z1, z2)
        self._update_trackers(terms)
        loss = self.nan_guard(terms["loss"] + self._regularization_loss(), z1, z2)
        # Every replica computed the global-batch loss: see kps.distribute.
        return scale_loss_for_replicas(loss)

    def nan_guard(self, loss, *embeddings):
        """`loss`, or NaN when it or any of `embeddings` holds a NaN or infinity.

        A loss can stay finite while its inputs are not (e.g. a clipped or
        masked statistic), so the weights turn NaN while the logged loss does
        not, and `keras.callbacks.TerminateOnNaN` never fires. This check runs
        on device, inside the compiled step of every backend, for the cost of
        one `isfinite` over the embeddings.
        """
        finite = ops.all(ops.isfinite(loss))
        for z in embeddings:
            finite = ops.logical_and(finite, ops.all(ops.isfinite(z)))
        return ops.where(finite, loss, ops.full_like(loss, float("nan")))

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            projector=keras.saving.serialize_keras_object(self.projector),
            loss=keras.saving.serialize_keras_object(self.ssl_loss),
            input_range=self.input_range,
            augment=None if self.augment_config is None else json.loads(self.augment_config),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "projector", "loss"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        if isinstance(config.get("augment"), dict):
            config["augment"] = keras.saving.deserialize_keras_object(config["augment"])
        return cls(**config)


def _replica_position():
    """`(replica id, number of replicas)` under `tf.distribute`, else `(0, 1)`."""
    replicas = num_replicas_in_sync()
    if replicas == 1:
        return 0, 1
    import tensorflow as tf

    return tf.distribute.get_replica_context().replica_id_in_sync_group, replicas
