"""`PseudoLabelPIDLoss`: the PID loss with a k-means pseudo-label as the target."""

import keras
from keras import ops

from keras_pid_ssl.distribute.replicas import gather_replicas
from keras_pid_ssl.information.classifier_pid import ClassifierPIDHeads
from keras_pid_ssl.information.classifier_pid import classifier_pid
from keras_pid_ssl.information.classifier_pid import cross_entropy
from keras_pid_ssl.information.gaussian_pid import ATOM_NAMES
from keras_pid_ssl.losses.pid import PIDLoss
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import static_shape

PSEUDO_LABEL_DIAGNOSTICS = ("head_ce1", "head_ce2", "head_ce12", "label_entropy")
STATE_NAMES = ("supervision_weight", "label_entropy", "pseudo_labels_ready")


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class PseudoLabelPIDLoss(PIDLoss):
    """`PIDLoss` whose target T is a discrete pseudo-label (docs/spec.md, section 5).

    The protocol of the authors' follow-up (arXiv 2412.02121): T is the
    k-means cluster of an image's backbone features, refreshed every few
    epochs by `kps.callbacks.PseudoLabelRefresh`. The PID atoms come from
    classifier heads (`kps.information.classifier_pid`): linear heads q1(z1),
    q2(z2) and an MLP head q12([z1, z2]), with I(T; Z) >= H(T) - cross-entropy
    and H(T) the entropy of the label histogram of the whole training set
    (set at each refresh). Everything else is `PIDLoss`'s: the base loss and
    its re-weighted invariance term, the coefficients that `PIDProtocol`
    moves, the weighting of the three PID terms and `gradient_ratio`.

    The loss, once pseudo-labels exist:

        L = base(Z1, Z2)   (invariance term times `invariance_weight`)
            + w_joint * J + w_red * Red - w_syn * Syn           # trains the backbone
            + supervision_weight * [CE_1 + CE_2]                # trains the backbone
            + [CE_1 + CE_2 + CE_12] on stop_gradient(Z)         # trains the heads only

    - The heads are estimators: trained by their own cross-entropy on
      stop-gradient embeddings (`estimator_term`), so estimating the atoms
      does not shape the representation. The supervision and PID terms
      evaluate the same heads with frozen weights: their gradients reach the
      backbone and projector but never the heads, which would otherwise learn
      to misreport the atoms.
    - `supervision_term` is the follow-up's per-view classification loss; its
      weight (`supervision_weight`, the follow-up's alpha) is ramped by
      `PseudoLabelRefresh`.
    - In `units="nats"` J = -I12 and Red, Syn in nats; in `units="r2"` each is
      divided by H(T) (the share of the target's entropy explained, in [0, 1]):
      J = 1 - I12 / H(T), Red / H(T), Syn / H(T). There is one target variable,
      so the terms are not summed over dimensions: their weights need to be
      larger than the Gaussian ones to matter (see `pid_grad_ratio`).

    Before the first clustering (`pseudo_labels_ready == 0`) the loss is the
    base loss and the atoms read 0. `supervision_weight`, `label_entropy` and
    `pseudo_labels_ready` are non-trainable variables: compiled steps read them
    on every backend and checkpoints store them. The heads are built by
    `build(embedding_shape)` (`PIDModel` does it when its projector is built).

    Args:
        num_clusters: number of pseudo-label classes K (the heads' width).
        joint_hidden_dims: hidden widths of the joint head's MLP.
        base, invariance_weight, w_joint, w_red, w_syn, units: as `PIDLoss`.
        estimator: `"classifier"` (the only estimator of a discrete target).

    Example:

    >>> loss = kps.losses.PseudoLabelPIDLoss(num_clusters=3, joint_hidden_dims=(8,))
    >>> loss.build((None, 4))
    >>> z1, z2 = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
    >>> float(loss.terms(z1, z2, np.array([0, 1, 2, 0, 1, 2]))["synergy"])  # not ready yet
    0.0
    """

    target_kind = "label"
    estimators = ("classifier",)
    extra_term_names = ("supervision_term", "estimator_term")

    def __init__(self, num_clusters, joint_hidden_dims=(512,), **kwargs):
        check_int("num_clusters", num_clusters, 2)
        super().__init__(**kwargs)
        self.num_clusters = int(num_clusters)
        self.heads = ClassifierPIDHeads(
            self.num_clusters, joint_hidden_dims, name="pseudo_label_heads"
        )
        self.state = {
            name: self.add_weight(
                shape=(), initializer="zeros", trainable=False, dtype="float32", name=name
            )
            for name in STATE_NAMES
        }
        self.built = False

    @classmethod
    def from_pid_loss(cls, loss, num_clusters, joint_hidden_dims=(512,)):
        """The same base, coefficients and units as the `PIDLoss` `loss`."""
        if not isinstance(loss, PIDLoss):
            raise ValueError(f"`loss` must be a kps.losses.PIDLoss. Received: loss={loss!r}")
        config = loss.get_config()
        kept = ("base", "units") + tuple(loss.pid_coefficients)
        return cls(
            num_clusters,
            joint_hidden_dims,
            **{name: config[name] for name in kept},
        )

    def build(self, embedding_shape):
        """Builds the heads for embeddings of shape `(batch_size, dim)`."""
        self.heads.build(embedding_shape, embedding_shape)
        self.built = True

    def set_state(self, ready=None, label_entropy=None, supervision_weight=None):
        """Assigns the pseudo-label state (what `PseudoLabelRefresh` does)."""
        values = {
            "pseudo_labels_ready": ready,
            "label_entropy": label_entropy,
            "supervision_weight": supervision_weight,
        }
        for name, value in values.items():
            if value is not None:
                self.state[name].assign(float(value))

    @property
    def diagnostic_names(self):
        return ATOM_NAMES + PSEUDO_LABEL_DIAGNOSTICS + ("supervision_weight",)

    def prepare_target(self, labels):
        shape = static_shape(labels)
        if len(shape) != 1:
            raise ValueError(
                f"`{type(self).__name__}` expects pseudo-labels as an int vector "
                f"(batch_size,); received shape {shape}. Build the batches with "
                "kps.data.ssl_dataset(..., pseudo_labels=refresh.labels)."
            )
        return gather_replicas(ops.cast(labels, "int32"))

    def _unweighted(self, atoms):
        if self.units == "nats":
            return -atoms["i12"], atoms["redundancy"], atoms["synergy"]
        entropy = ops.maximum(atoms["label_entropy"], 1e-6)
        return (
            1.0 - atoms["i12"] / entropy,
            atoms["redundancy"] / entropy,
            atoms["synergy"] / entropy,
        )

    def pid_terms(self, z1, z2, labels):
        ready = ops.convert_to_tensor(self.state["pseudo_labels_ready"])
        alpha = ops.convert_to_tensor(self.state["supervision_weight"])
        # The estimator: heads trained on stop-gradient embeddings.
        logits = self.heads(ops.stop_gradient(z1), ops.stop_gradient(z2))
        estimator_loss = sum(cross_entropy(labels, x) for x in logits)
        # The same heads, frozen, on the live embeddings: gradients reach the backbone only.
        atoms = classifier_pid(
            labels, *self.heads(z1, z2, frozen=True), entropy=self.state["label_entropy"]
        )
        joint, redundancy, synergy = (ready * x for x in self._unweighted(atoms))
        extra = {
            "supervision_term": ready * alpha * (atoms["head_ce1"] + atoms["head_ce2"]),
            "estimator_term": ready * estimator_loss,
        }
        # Before the first clustering the labels are placeholders: report 0.
        diagnostics = {name: ready * atoms[name] for name in ATOM_NAMES + PSEUDO_LABEL_DIAGNOSTICS}
        diagnostics["supervision_weight"] = alpha
        return (joint, redundancy, synergy), extra, diagnostics

    def get_config(self):
        config = super().get_config()
        for name in ("estimator", "epsilon", "delta"):
            del config[name]
        config.update(
            num_clusters=self.num_clusters, joint_hidden_dims=self.heads.joint_hidden_dims
        )
        return config
