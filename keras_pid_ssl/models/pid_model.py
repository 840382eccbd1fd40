"""`PIDModel`: SSL with a target view and the PID loss."""

import keras
from keras import ops

from keras_pid_ssl.distribute.replicas import scale_loss_for_replicas
from keras_pid_ssl.distribute.replicas import sum_over_replicas
from keras_pid_ssl.losses.pid import PIDLoss
from keras_pid_ssl.models.ssl_model import SSLModel
from keras_pid_ssl.utils.autodiff import gradient
from keras_pid_ssl.utils.validation import check_momentum


def _clone_layer(layer, name):
    config = layer.get_config()
    config["name"] = name
    return type(layer).from_config(config)


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class PIDModel(SSLModel):
    """An `SSLModel` whose objective also sees a target view (SPEC section 1).

    Batches are `(view1, view2, target_view)`: two strong augmentations and
    the target view of the same images (the clean image by default; see
    `kps.data.ssl_dataset(..., views="pid")`). The sources are
    `Z_i = g(f(view_i))`; the target is `T = stop_gradient(g_t(f_t(target)))`
    where `(f_t, g_t)` is the online network itself (`target_momentum=0`) or an
    exponential moving average of it (`target_momentum=m`, updated inside the
    training step on every backend: `theta_t <- m theta_t + (1 - m) theta`).
    The target network runs with batch statistics in training, like BYOL's.

    Every term, PID atom (nats) and coefficient of the `PIDLoss` is reported
    as a metric, plus `pid_grad_ratio`: the ratio of the gradient norm of the
    weighted PID terms to that of the base loss, with respect to the projector
    outputs, so you can see whether the PID terms matter at all.

    Args:
        encoder: a `keras.Model` mapping images to feature vectors.
        projector: a layer mapping features to embeddings.
        loss: a `PIDLoss` (default: `PIDLoss()`, the SPEC's pilot setting).
        target_momentum: 0 for the same network, else the EMA momentum in
            [0, 1).
        track_gradient_ratio: compute `pid_grad_ratio` (two extra backward
            passes through the loss, not through the network).

    Example:

    ```python
    import keras_pid_ssl as kps
    model = kps.PIDModel(
        kps.backbones.SmallConvNet(input_shape=(28, 28, 1)),
        kps.heads.Projector(hidden_dims=(256,), output_dim=256),
        loss=kps.losses.PIDLoss(base="barlow_twins", w_syn=1.0),
    )
    model.compile(optimizer="adamw")
    model.fit(pid_dataset, epochs=10)  # yields (view1, view2, target_view)
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
        super().__init__(encoder, projector, loss, **kwargs)
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
        return list(zip(targets, onlines))

    @property
    def num_views(self):
        return 3

    def _view_names(self):
        return "(view1, view2, target_view)"

    def _target_embedding(self, target_view, training):
        if self.target_encoder is None:
            return ops.stop_gradient(self(target_view, training=training))
        features = self.target_encoder(target_view, training=training)
        return ops.stop_gradient(self.target_projector(features, training=training))

    def _update_target_network(self):
        m = self.target_momentum
        for target, online in self._target_pairs():
            target.assign(m * target + (1.0 - m) * ops.stop_gradient(online.value))

    def _gradient_ratio(self, z1, z2, zt):
        """||d(PID terms)/dz|| / ||d(base)/dz|| at the projector outputs."""
        z = ops.stop_gradient(ops.stack([z1, z2]))
        zt = ops.stop_gradient(zt)
        loss = self.ssl_loss

        def pid_part(z):
            terms = loss.terms(z[0], z[1], zt)
            return terms["joint_term"] + terms["redundancy_term"] + terms["synergy_term"]

        def base_part(z):
            terms = loss.terms(z[0], z[1], zt)
            return sum(terms[name] for name in loss.base.term_names)

        # Under tf.distribute each replica holds its own rows of z: add the
        # squared norms over replicas to get the global-batch norms.
        pid_sq = sum_over_replicas(ops.sum(ops.square(gradient(pid_part, z))))
        base_sq = sum_over_replicas(ops.sum(ops.square(gradient(base_part, z))))
        return ops.sqrt(pid_sq) / (ops.sqrt(base_sq) + 1e-12)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        view1, view2, target_view = self._unpack_views(x, y, sample_weight)
        z1 = y_pred if y_pred is not None else self(view1, training=training)
        z2 = self(view2, training=training)
        zt = self._target_embedding(target_view, training)
        terms = self.ssl_loss.terms(z1, z2, zt)
        self._update_trackers(terms)
        if training and self.track_gradient_ratio:
            self.grad_ratio_tracker.update_state(self._gradient_ratio(z1, z2, zt))
        if training and self.target_encoder is not None:
            self._update_target_network()
        # Every replica computed the global-batch loss: see kps.distribute.
        return scale_loss_for_replicas(terms["loss"] + self._regularization_loss())

    def get_config(self):
        config = super().get_config()
        config.update(
            target_momentum=self.target_momentum,
            track_gradient_ratio=self.track_gradient_ratio,
        )
        return config
