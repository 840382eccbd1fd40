"""`PseudoLabelPIDModel`: PID with a k-means pseudo-label as the target."""

import keras
from keras import ops

from keras_pid_ssl.distribute.replicas import gather_replicas
from keras_pid_ssl.distribute.replicas import scale_loss_for_replicas
from keras_pid_ssl.information.classifier_pid import ClassifierPIDHeads
from keras_pid_ssl.information.classifier_pid import _cross_entropy
from keras_pid_ssl.information.classifier_pid import classifier_pid
from keras_pid_ssl.information.gaussian_pid import ATOM_NAMES
from keras_pid_ssl.models.pid_model import PIDModel
from keras_pid_ssl.utils.autodiff import gradient
from keras_pid_ssl.utils.validation import _static_shape
from keras_pid_ssl.utils.validation import check_views

PSEUDO_LABEL_METRICS = (
    "head_ce1",
    "head_ce2",
    "head_ce12",
    "label_entropy",
    "supervision_term",
    "supervision_weight",
)


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class PseudoLabelPIDModel(PIDModel):
    """PID-based SSL whose target T is a discrete pseudo-label (SPEC section 5).

    The protocol of the authors' follow-up (arXiv 2412.02121): T is the
    k-means cluster of an image's backbone features, refreshed every few
    epochs by `kps.callbacks.PseudoLabelRefresh`. Unlike an embedding of the
    same network, such a target changes slowly and cannot co-adapt with the
    sources within a step. The PID atoms come from classifier heads
    (`kps.information.classifier_pid`): linear heads q1(z1), q2(z2) and an MLP
    head q12([z1, z2]) on the projector embeddings Z_i = g(f(view_i)), with
    I(T; Z) >= H(T) - cross-entropy and H(T) the entropy of the label
    histogram of the whole training set (set at each refresh).

    The loss, once pseudo-labels exist:

        L = base(Z1, Z2)   (invariance term times `invariance_weight`)
            + [CE_1 + CE_2 + CE_12] on stop_gradient(Z)       # trains the heads only
            + supervision_weight * [CE_1 + CE_2]               # trains the backbone
            + w_joint * J + w_red * Red - w_syn * Syn          # trains the backbone

    with the `PIDLoss` coefficients. Who trains what, by design:

    - The heads are estimators: they are trained by their own cross-entropy
      on stop-gradient embeddings, so estimating the atoms does not shape the
      representation. The supervision and PID terms evaluate the same heads
      with their weights frozen (`ClassifierPIDHeads(..., frozen=True)`):
      their gradients reach the backbone and projector but never the heads,
      which would otherwise learn to misreport the atoms (e.g. a worse
      single-view head raises the synergy estimate).
    - The supervision term is the follow-up's per-view classification loss;
      its weight (`supervision_weight`, the follow-up's alpha) is a
      non-trainable variable that `PseudoLabelRefresh` ramps log-linearly
      (1e-5 -> 1e-1 by default) over the stage after the first clustering.
    - PID terms: in `units="nats"` J = -I12, Red and Syn in nats; in
      `units="r2"` each is divided by H(T) (the share of the target's entropy
      explained, bounded in [0, 1] like the Gaussian R^2 units):
      J = 1 - I12 / H(T), Red / H(T), Syn / H(T). There is one target
      variable, so the terms are not summed over dimensions; their weights
      need to be larger than the Gaussian ones to matter against a base loss
      summed over the projector's dimensions (see `pid_grad_ratio`).

    Before the first clustering (`pseudo_labels_ready == 0`) the loss is the
    base loss only and the atoms read 0. `supervision_weight`,
    `label_entropy` and `pseudo_labels_ready` are non-trainable variables
    of the model: compiled steps read them on every backend and
    `save_weights` / `ResumableBackup` store them.

    Batches: Keras unpacks a batch as `(x, y, sample_weight)` and rejects
    4-tuples, so the pseudo-label travels in the third slot:
    `(view1, view2, (target_view, pseudo_label))` (what
    `kps.data.ssl_dataset(..., views="pid", pseudo_labels=...)` yields) or
    `(view1, view2, pseudo_label)` (`views="two"`: cheaper, as this model does
    not use the target view). `pseudo_label` is an int vector
    `(batch_size,)`. Keras passes the third slot through untouched to
    `compute_loss`, the only training hook overridden, on TensorFlow, JAX and
    PyTorch.

    Metrics: those of `PIDModel` (base terms, weighted PID terms, atoms in
    nats, coefficients, `pid_grad_ratio`, which here includes the supervision
    term) plus `head_ce1`, `head_ce2`, `head_ce12`, `label_entropy`,
    `supervision_term` and `supervision_weight`.

    Args:
        encoder: a `keras.Model` mapping images to feature vectors.
        projector: a layer mapping features to embeddings.
        num_clusters: number of pseudo-label classes K (the heads' width).
        loss: a `PIDLoss` (its base, invariance weight, PID weights and
            units are used; its Gaussian estimator is not).
        joint_hidden_dims: hidden widths of the joint head's MLP.
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
        num_clusters,
        loss=None,
        joint_hidden_dims=(512,),
        track_gradient_ratio=True,
        **kwargs,
    ):
        super().__init__(
            encoder,
            projector,
            loss=loss,
            target_momentum=0.0,
            track_gradient_ratio=track_gradient_ratio,
            **kwargs,
        )
        self.heads = ClassifierPIDHeads(num_clusters, joint_hidden_dims, name="pseudo_label_heads")
        self.num_clusters = num_clusters
        if self.projector.built:
            shape = self.projector.compute_output_shape(self.encoder.output_shape)
            self.heads.build(shape, shape)
        state = {}
        for name in ("supervision_weight", "label_entropy", "pseudo_labels_ready"):
            state[name] = self.add_weight(
                shape=(), initializer="zeros", trainable=False, dtype="float32", name=name
            )
        self.supervision_weight = state["supervision_weight"]
        self.label_entropy = state["label_entropy"]
        self.pseudo_labels_ready = state["pseudo_labels_ready"]
        self.pseudo_label_trackers = {
            name: keras.metrics.Mean(name=name) for name in PSEUDO_LABEL_METRICS
        }

    @classmethod
    def from_pid_model(cls, model, num_clusters, **kwargs):
        """The same encoder, projector and `PIDLoss` as `model` (e.g. a preset).

        Example:

        ```python
        pid = kps.presets.pid_ssl(encoder, projector_dims=(512, 512))
        model = kps.models.PseudoLabelPIDModel.from_pid_model(pid, num_clusters=10)
        ```
        """
        if not isinstance(model, PIDModel):
            raise ValueError(f"`model` must be a kps.PIDModel. Received: {model!r}")
        return cls(model.encoder, model.projector, num_clusters, loss=model.ssl_loss, **kwargs)

    def set_pseudo_label_state(self, ready=None, label_entropy=None, supervision_weight=None):
        """Assigns the state variables (what `PseudoLabelRefresh` does)."""
        for variable, value in (
            (self.pseudo_labels_ready, ready),
            (self.label_entropy, label_entropy),
            (self.supervision_weight, supervision_weight),
        ):
            if value is not None:
                variable.assign(float(value))

    def _view_names(self):
        return "(view1, view2, (target_view, pseudo_label)) or (view1, view2, pseudo_label)"

    def _unpack_batch(self, x, y, sample_weight):
        labels = sample_weight
        if isinstance(labels, (tuple, list)) and len(labels) == 2:
            labels = labels[1]  # (target_view, pseudo_label): no use for the view here
        if (
            x is None
            or y is None
            or getattr(labels, "shape", None) is None
            or len(_static_shape(labels)) != 1
        ):
            raise ValueError(
                f"PseudoLabelPIDModel expects batches {self._view_names()}, with an int "
                "vector of pseudo-labels; build them with kps.data.ssl_dataset(..., "
                f"pseudo_labels=refresh.labels). Received a third element: {labels!r}"
            )
        check_views(type(self).__name__, x, y)
        return x, y, labels

    def _pid_terms(self, atoms):
        """Unweighted (joint, redundancy, synergy) terms in the loss's units."""
        if self.ssl_loss.units == "nats":
            return -atoms["i12"], atoms["redundancy"], atoms["synergy"]
        entropy = ops.maximum(atoms["label_entropy"], 1e-6)
        return (
            1.0 - atoms["i12"] / entropy,
            atoms["redundancy"] / entropy,
            atoms["synergy"] / entropy,
        )

    def pseudo_label_terms(self, z1, z2, labels):
        """Every weighted term, atom (nats) and coefficient, and `loss`."""
        loss = self.ssl_loss
        z1, z2 = loss._prepare(z1, z2)
        labels = gather_replicas(ops.cast(labels, "int32"))
        out = dict(loss.base.terms(z1, z2))
        del out["loss"]
        coef = {name: ops.convert_to_tensor(v) for name, v in loss.coefficients.items()}
        inv = loss.base.invariance_term
        out[inv] = coef["invariance_weight"] * out[inv]
        base_loss = sum(out[name] for name in loss.base.term_names)
        ready = ops.convert_to_tensor(self.pseudo_labels_ready)
        alpha = ops.convert_to_tensor(self.supervision_weight)

        # The estimator: heads trained on stop-gradient embeddings.
        estimator_logits = self.heads(ops.stop_gradient(z1), ops.stop_gradient(z2))
        estimator_loss = sum(_cross_entropy(labels, logits) for logits in estimator_logits)
        # The same heads, frozen, on the live embeddings: gradients to the backbone only.
        atoms = classifier_pid(labels, *self.heads(z1, z2, frozen=True), entropy=self.label_entropy)
        joint, redundancy, synergy = self._pid_terms(atoms)
        out["joint_term"] = ready * coef["w_joint"] * joint
        out["redundancy_term"] = ready * coef["w_red"] * redundancy
        out["synergy_term"] = -ready * coef["w_syn"] * synergy
        out["supervision_term"] = ready * alpha * (atoms["head_ce1"] + atoms["head_ce2"])
        out["loss"] = (
            base_loss
            + out["joint_term"]
            + out["redundancy_term"]
            + out["synergy_term"]
            + out["supervision_term"]
            + ready * estimator_loss
        )
        # Before the first clustering the labels are placeholders: report 0.
        for name in ATOM_NAMES + ("head_ce1", "head_ce2", "head_ce12", "label_entropy"):
            out[name] = ready * atoms[name]
        out.update(coef)
        out["supervision_weight"] = alpha
        return out

    def _pseudo_label_gradient_ratio(self, z1, z2, labels):
        """||d(PID + supervision terms)/dz|| / ||d(base)/dz|| at the projector outputs."""
        z = ops.stop_gradient(ops.stack([z1, z2]))
        base_names = self.ssl_loss.base.term_names

        def pid_part(z):
            terms = self.pseudo_label_terms(z[0], z[1], labels)
            return (
                terms["joint_term"]
                + terms["redundancy_term"]
                + terms["synergy_term"]
                + terms["supervision_term"]
            )

        def base_part(z):
            terms = self.pseudo_label_terms(z[0], z[1], labels)
            return sum(terms[name] for name in base_names)

        pid_norm = ops.sqrt(ops.sum(ops.square(gradient(pid_part, z))))
        base_norm = ops.sqrt(ops.sum(ops.square(gradient(base_part, z))))
        return pid_norm / (base_norm + 1e-12)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        view1, view2, labels = self._unpack_batch(x, y, sample_weight)
        z1 = y_pred if y_pred is not None else self(view1, training=training)
        z2 = self(view2, training=training)
        terms = self.pseudo_label_terms(z1, z2, labels)
        self._update_trackers(terms)
        for name, tracker in self.pseudo_label_trackers.items():
            tracker.update_state(terms[name])
        if training and self.track_gradient_ratio:
            self.grad_ratio_tracker.update_state(self._pseudo_label_gradient_ratio(z1, z2, labels))
        # Every replica computed the global-batch loss: see kps.distribute.
        return scale_loss_for_replicas(terms["loss"] + self._regularization_loss())

    def get_config(self):
        config = super().get_config()
        del config["target_momentum"]
        config.update(
            num_clusters=self.num_clusters,
            joint_hidden_dims=self.heads.joint_hidden_dims,
        )
        return config
