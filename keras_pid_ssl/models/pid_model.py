"""`PIDModel`: SSL with a target view and the PID loss."""

import keras
from keras import ops

from keras_pid_ssl.distribute.replicas import scale_loss_for_replicas
from keras_pid_ssl.losses.pid import PIDLoss
from keras_pid_ssl.models.ssl_model import SSLModel
from keras_pid_ssl.utils.validation import check_momentum


def _clone_layer(layer, name):
    config = layer.get_config()
    config["name"] = name
    return type(layer).from_config(config)


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class PIDModel(SSLModel):
    """An `SSLModel` whose objective also sees a target (docs/spec.md, section 1).

    Batches are dicts `{"view1", "view2", "target"}`: two strong
    augmentations and the target view of the same images (the clean image by
    default; see `kps.data.ssl_dataset(..., views="pid")`). The sources are
    `Z_i = g(f(view_i))`; the target is `T = stop_gradient(g_t(f_t(target)))`
    where `(f_t, g_t)` is the online network itself (`target_momentum=0`) or an
    exponential moving average of it (`target_momentum=m`, updated inside the
    training step on every backend: `theta_t <- m theta_t + (1 - m) theta`).

    The target pass changes no state: with the same network it normalises
    with its own batch statistics, and BatchNorm moving statistics (and any
    other non-trainable variable of the encoder and projector) are put back
    after it, so clean target images never leak into the statistics that
    inference and linear evaluation use (Barlow Twins never sees them
    either). The EMA target network is not trainable, so Keras runs its
    BatchNorm layers in inference mode: its statistics are the EMA of the
    online ones, nothing else.

    With a `PseudoLabelPIDLoss` the target is a pseudo-label instead: batches
    are `{"view1", "view2", "label"}` (see `PseudoLabelPIDModel`).

    With `augment` (see `SSLModel`), batches are `{"images"}` (plus
    `"label"` for a pseudo-label target) and the model draws the two views
    and the target view on the device: a preset name gives the `"clean"`
    target (the image resized to the encoder's input size); for `"weak"`,
    pass `kps.augment.preset(name, target="weak")`.

    Every term, PID atom (nats) and coefficient of the loss is reported as a
    metric, plus `pid_grad_ratio` (`PIDLoss.gradient_ratio`): the ratio of
    the gradient norm of the weighted PID terms to that of the base loss,
    with respect to the projector outputs, so you can see whether the PID
    terms matter at all.

    Args:
        encoder: a `keras.Model` mapping images to feature vectors.
        projector: a layer mapping features to embeddings.
        loss: a `PIDLoss` (default: `PIDLoss()`, the spec's pilot setting).
        target_momentum: 0 for the same network, else the EMA momentum in
            [0, 1).
        track_gradient_ratio: compute `pid_grad_ratio` (two extra backward
            passes through the loss, not through the network).
        **kwargs: `SSLModel`'s `input_range` and `augment`, and base model
            arguments (`name`).

    Example:

    ```python
    import keras_pid_ssl as kps
    model = kps.PIDModel(
        kps.backbones.SmallConvNet(input_shape=(28, 28, 1)),
        kps.heads.Projector(hidden_dims=(256,), output_dim=256),
        loss=kps.losses.PIDLoss(base="barlow_twins", w_syn=1.0),
    )
    model.compile(optimizer="adamw")
    model.fit(pid_dataset, epochs=10)  # yields {"view1", "view2", "target"}
    ```
    """

    def __init__(
        self,
        encoder,
        projector,
        loss=None,
        target_momentum=0.0,
        track_gradient_ratio=True,
        **kwargs,
    ):
        loss = PIDLoss() if loss is None else loss
        if not isinstance(loss, PIDLoss):
            raise ValueError(
                "`PIDModel` needs a kps.losses.PIDLoss (it uses the target view). "
                f"Received: loss={loss!r}. Use SSLModel for a two-view loss."
            )
        check_momentum("target_momentum", target_momentum)
        if loss.target_kind == "label" and target_momentum:
            raise ValueError(
                "A pseudo-label target needs no target network: `target_momentum` must be 0 "
                f"with {type(loss).__name__}. Received: target_momentum={target_momentum!r}"
            )
        super().__init__(encoder, projector, loss, **kwargs)
        if not loss.built and self.projector.built:
            loss.build(self.projector.compute_output_shape(self.encoder.output_shape))
        self.target_momentum = float(target_momentum)
        self.track_gradient_ratio = bool(track_gradient_ratio)
        self.grad_ratio_tracker = keras.metrics.Mean(name="pid_grad_ratio")
        self.target_encoder = None
        self.target_projector = None
        if self.target_momentum > 0.0:
            self._build_target_network()

    def _build_target_network(self):
        if not self.projector.built:
            raise ValueError(
                "An EMA target (`target_momentum > 0`) needs a built encoder and "
                "projector; pass an encoder with a known input shape."
            )
        self.target_encoder = _clone_layer(self.encoder, f"target_{self.encoder.name}")
        self.target_projector = _clone_layer(self.projector, f"target_{self.projector.name}")
        self.target_projector.build(self.encoder.output_shape)
        for target, online in self._target_pairs():
            # Through NumPy: on JAX, assigning the online array itself would
            # alias one buffer in two variables, which a jitted step donates twice.
            target.assign(ops.convert_to_numpy(online))
        self.target_encoder.trainable = False
        self.target_projector.trainable = False

    def _target_pairs(self):
        targets = self.target_encoder.weights + self.target_projector.weights
        onlines = self.encoder.weights + self.projector.weights
        return list(zip(targets, onlines, strict=True))

    def augment_target_view(self):
        return "clean" if self.ssl_loss.target_kind == "embedding" else None

    @property
    def view_keys(self):
        if self.augment is not None:
            return ("images",) if self.target_key == "target" else ("images", "label")
        return self.views_keys

    @property
    def views_keys(self):
        return ("view1", "view2", self.target_key)

    @property
    def target_key(self):
        """The batch key of the target: `"target"` (a view) or `"label"`."""
        return "target" if self.ssl_loss.target_kind == "embedding" else "label"

    def target(self, batch, training):
        """T: the stop-gradient target embedding, or the batch's pseudo-labels."""
        if self.ssl_loss.target_kind == "label":
            return batch["label"]
        if self.target_encoder is not None:
            # Not trainable: Keras runs its BatchNorm layers in inference mode,
            # so the target pass changes none of its variables.
            features = self.target_encoder(batch["target"], training=training)
            return ops.stop_gradient(self.target_projector(features, training=training))
        # The online network: put back the float state the pass changes
        # (BatchNorm moving statistics), not its random generators' states.
        state = [
            variable
            for variable in self.encoder.non_trainable_variables
            + self.projector.non_trainable_variables
            if "float" in str(variable.dtype)
        ]
        saved = [ops.copy(variable.value) for variable in state]
        embedding = self._embed(batch["target"], training)
        for variable, value in zip(state, saved, strict=True):
            variable.assign(value)
        return ops.stop_gradient(embedding)

    def _update_target_network(self):
        m = self.target_momentum
        for target, online in self._target_pairs():
            target.assign(m * target + (1.0 - m) * ops.stop_gradient(online.value))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        z1, z2 = self.embeddings(x, y_pred, training)
        if isinstance(y_pred, dict) and "target_view" in y_pred:
            x = {**x, "target": y_pred["target_view"]}  # drawn by `augment`
        t = self.target(x, training)
        terms = self.ssl_loss.terms(z1, z2, t)
        self._update_trackers(terms)
        if training and self.track_gradient_ratio:
            self.grad_ratio_tracker.update_state(self.ssl_loss.gradient_ratio(z1, z2, t))
        if training and self.target_encoder is not None:
            self._update_target_network()
        embeddings = (z1, z2) if self.ssl_loss.target_kind == "label" else (z1, z2, t)
        loss = self.nan_guard(terms["loss"] + self._regularization_loss(), *embeddings)
        # Every replica computed the global-batch loss: see kps.distribute.
        return scale_loss_for_replicas(loss)

    def get_config(self):
        config = super().get_config()
        config.update(
            target_momentum=self.target_momentum,
            track_gradient_ratio=self.track_gradient_ratio,
        )
        return config
