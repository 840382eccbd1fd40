"""`PseudoLabelPIDModel`: a `PIDModel` whose target is a k-means pseudo-label."""

import keras

from keras_pid_ssl.losses.pid import PIDLoss
from keras_pid_ssl.losses.pseudo_label_pid import PseudoLabelPIDLoss
from keras_pid_ssl.models.pid_model import PIDModel


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class PseudoLabelPIDModel(PIDModel):
    """A `PIDModel` trained with a `PseudoLabelPIDLoss` (docs/spec.md, section 5).

    The objective, its heads and its state live in the loss
    (`kps.losses.PseudoLabelPIDLoss`); this class only builds that loss from a
    `PIDLoss` and the number of clusters, and names its state for
    `kps.callbacks.PseudoLabelRefresh`. It is the same as
    `kps.PIDModel(encoder, projector, loss=kps.losses.PseudoLabelPIDLoss(...))`.

    Batches are dicts `{"view1", "view2", "label"}` with `label` an int vector
    `(batch_size,)` of pseudo-labels (what `kps.data.ssl_dataset(...,
    pseudo_labels=refresh.labels)` yields; a `"target"` view, if present, is
    not used).

    Metrics: those of `PIDModel` (base terms, weighted PID terms, atoms in
    nats, coefficients, `pid_grad_ratio`, which here includes the supervision
    term) plus `supervision_term`, `estimator_term`, `head_ce1`, `head_ce2`,
    `head_ce12`, `label_entropy` and `supervision_weight`.

    Args:
        encoder: a `keras.Model` mapping images to feature vectors.
        projector: a layer mapping features to embeddings.
        num_clusters: number of pseudo-label classes K (the heads' width);
            may be omitted when `loss` is a `PseudoLabelPIDLoss`.
        loss: a `PIDLoss` (its base, invariance weight, PID weights and units
            are used) or a `PseudoLabelPIDLoss`.
        joint_hidden_dims: hidden widths of the joint head's MLP (default
            `(512,)`; with a `PseudoLabelPIDLoss`, the loss's).
        track_gradient_ratio: compute `pid_grad_ratio`.

    Example:

    ```python
    import keras_pid_ssl as kps
    images, _ = kps.data.load("fashion_mnist", "train")
    model = kps.models.PseudoLabelPIDModel(
        kps.backbones.SmallConvNet(input_shape=(28, 28, 1)),
        kps.heads.Projector(hidden_dims=(512,), output_dim=512),
        num_clusters=10,
        loss=kps.losses.PIDLoss(w_syn=1.0, units="nats"),
    )
    refresh = kps.callbacks.PseudoLabelRefresh(images, epochs=100)
    dataset = kps.data.ssl_dataset(images, augment="grayscale",
                                   pseudo_labels=refresh.labels)
    model.compile(optimizer="adamw")
    model.fit(dataset, epochs=100,
              callbacks=[refresh, kps.callbacks.PIDProtocol(epochs=100)])
    ```
    """

    def __init__(
        self,
        encoder,
        projector,
        num_clusters=None,
        loss=None,
        joint_hidden_dims=None,
        track_gradient_ratio=True,
        **kwargs,
    ):
        if kwargs.pop("target_momentum", 0.0):
            raise ValueError(
                "A pseudo-label target needs no target network: PseudoLabelPIDModel takes "
                "no `target_momentum` (or 0)."
            )
        if isinstance(loss, PseudoLabelPIDLoss):
            if num_clusters not in (None, loss.num_clusters):
                raise ValueError(
                    f"`num_clusters`={num_clusters!r} differs from the loss's "
                    f"num_clusters={loss.num_clusters}; pass one of them."
                )
            if joint_hidden_dims is not None and (
                tuple(joint_hidden_dims) != loss.heads.joint_hidden_dims
            ):
                raise ValueError(
                    f"`joint_hidden_dims`={tuple(joint_hidden_dims)} differs from the "
                    f"loss's {loss.heads.joint_hidden_dims}; set it on the loss only."
                )
        else:
            if num_clusters is None:
                raise ValueError(
                    "`num_clusters` is required unless `loss` is a PseudoLabelPIDLoss."
                )
            loss = PseudoLabelPIDLoss.from_pid_loss(
                PIDLoss() if loss is None else loss, num_clusters, joint_hidden_dims or (512,)
            )
        super().__init__(
            encoder, projector, loss=loss, track_gradient_ratio=track_gradient_ratio, **kwargs
        )

    @classmethod
    def from_pid_model(cls, model, num_clusters, **kwargs):
        """The same encoder, projector and `PIDLoss` settings as `model` (e.g. a preset)."""
        if not isinstance(model, PIDModel):
            raise ValueError(f"`model` must be a kps.PIDModel. Received: {model!r}")
        return cls(model.encoder, model.projector, num_clusters, loss=model.ssl_loss, **kwargs)

    @property
    def num_clusters(self):
        return self.ssl_loss.num_clusters

    @property
    def heads(self):
        """The classifier heads that estimate the atoms (`ClassifierPIDHeads`)."""
        return self.ssl_loss.heads

    def set_pseudo_label_state(self, ready=None, label_entropy=None, supervision_weight=None):
        """Assigns the loss's state variables (what `PseudoLabelRefresh` does)."""
        self.ssl_loss.set_state(ready, label_entropy, supervision_weight)

    def get_config(self):
        config = super().get_config()
        del config["target_momentum"]
        return config
