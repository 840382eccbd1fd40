"""PID atoms of a discrete target, estimated through classifier heads.

For a discrete target T (e.g. the k-means pseudo-label of an image,
docs/spec.md, section 5) the Gaussian estimators do not apply. A classifier q(t | z)
gives the variational lower bound of Barber & Agakov (2003):

    I(T; Z) = H(T) - H(T | Z) >= H(T) - CE,   CE = E[-log q(T | Z)]

since the cross-entropy of any q upper-bounds the conditional entropy. With
heads q1(z1), q2(z2) and a joint head q12([z1, z2]) (`ClassifierPIDHeads`)
this gives I(T; Z1), I(T; Z2) and I(T; Z1, Z2), and the MMI atoms follow as
in `gaussian_pid` (redundancy = min(I1, I2), synergy = I12 - max(I1, I2)).

Each estimate is the tightest lower bound at hand: I_i = max(0, H - CE_i)
(a head worse than the label prior is uninformative, not negative) and
I12 = max(H - CE_12, I1, I2) (the joint information is at least either
single-view one), so 0 <= redundancy <= I_i <= I12 and synergy >= 0 by
construction. These are estimates on the batches the heads see: with a
head that cannot fit the data (e.g. a linear joint head on an XOR target)
the joint bound is loose and synergy is underestimated.
"""

import keras
from keras import ops

from keras_pid_ssl.information.gaussian_pid import mmi_atoms
from keras_pid_ssl.utils.validation import check_positive


def label_entropy(labels, num_classes):
    """Plug-in entropy H(T) (nats) of integer labels in `[0, num_classes)`."""
    histogram = ops.mean(ops.one_hot(ops.cast(labels, "int32"), num_classes), axis=0)
    # 0 log 0 = 0: the maximum keeps log finite, the product zeroes the term.
    return -ops.sum(histogram * ops.log(ops.maximum(histogram, 1e-12)))


def cross_entropy(labels, logits):
    """Mean cross-entropy (nats) of integer `labels` under the softmax of `logits`.

    `E[-log q(T | Z)]`, the quantity whose difference from H(T) bounds I(T; Z)
    from below; also the loss that trains the heads. Computed in float32.

    Args:
        labels: int tensor `(batch_size,)` in `[0, num_classes)`.
        logits: `(batch_size, num_classes)` unnormalised log-probabilities.

    Example:

    >>> uniform = np.zeros((4, 2), "float32")   # q = 1/2 for both classes
    >>> round(float(cross_entropy(np.array([0, 1, 1, 0]), uniform)), 4)  # ln 2
    0.6931
    """
    return ops.mean(
        ops.sparse_categorical_crossentropy(
            ops.cast(labels, "int32"), ops.cast(logits, "float32"), from_logits=True
        )
    )


def classifier_pid(labels, logits1, logits2, logits12, entropy=None):
    """Head-based PID atoms of I(T; Z1, Z2) for a discrete target T, in nats.

    Args:
        labels: int tensor `(batch_size,)`, the target T.
        logits1: `(batch_size, num_classes)` logits of q1(t | z1).
        logits2: logits of q2(t | z2).
        logits12: logits of the joint head q12(t | z1, z2).
        entropy: H(T) in nats; default: the plug-in entropy of `labels`
            (pass the histogram entropy of the whole data set when known:
            a batch underestimates it when classes outnumber samples).

    Returns:
        A dict of scalars: `i1, i2, i12, redundancy, unique1, unique2,
        synergy` (nats), `head_ce1, head_ce2, head_ce12` (the heads' mean
        cross-entropies, nats) and `label_entropy` (H(T)).

    Example:

    >>> import numpy as np
    >>> labels = np.array([0, 1, 0, 1])
    >>> sure = np.array([[9.0, -9.0], [-9.0, 9.0]] * 2, "float32")  # knows T
    >>> blind = np.zeros((4, 2), "float32")                           # knows nothing
    >>> atoms = classifier_pid(labels, sure, blind, sure)
    >>> round(float(atoms["unique1"]), 2), round(float(atoms["synergy"]), 2)
    (0.69, 0.0)
    """
    labels = ops.cast(labels, "int32")
    num_classes = logits1.shape[-1]
    if entropy is None:
        entropy = label_entropy(labels, num_classes)
    entropy = ops.cast(entropy, "float32")
    ce1, ce2, ce12 = (cross_entropy(labels, x) for x in (logits1, logits2, logits12))
    i1 = ops.maximum(entropy - ce1, 0.0)
    i2 = ops.maximum(entropy - ce2, 0.0)
    i12 = ops.maximum(entropy - ce12, ops.maximum(i1, i2))
    out = mmi_atoms(i1, i2, i12)
    out.update(head_ce1=ce1, head_ce2=ce2, head_ce12=ce12, label_entropy=entropy)
    return out


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class ClassifierPIDHeads(keras.layers.Layer):
    """The three heads of `classifier_pid`: q1(z1), q2(z2) and q12([z1, z2]).

    q1 and q2 are linear (a linear probe per view). q12 is a small MLP on the
    concatenation: a linear head on [z1, z2] is a sum of per-view scores and
    cannot represent interactions such as T = XOR(a, b), which are exactly
    what synergy measures.

    `call(z1, z2, frozen=True)` evaluates the heads with their weights behind
    a stop-gradient: gradients then reach the inputs but not the heads. This
    is how `PseudoLabelPIDModel` lets the PID terms act on the representation
    while the heads remain pure estimators, trained only by their own
    cross-entropy. The layer computes in float32 (a stable softmax also under
    mixed precision).

    Args:
        num_classes: number of target classes (>= 2).
        joint_hidden_dims: widths of the joint head's ReLU hidden layers.

    Example:

    >>> import numpy as np
    >>> heads = ClassifierPIDHeads(num_classes=10, joint_hidden_dims=(64,))
    >>> z1, z2 = np.random.normal(size=(2, 8, 32)).astype("float32")
    >>> [tuple(x.shape) for x in heads(z1, z2)]
    [(8, 10), (8, 10), (8, 10)]
    """

    def __init__(self, num_classes, joint_hidden_dims=(512,), **kwargs):
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(
                f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}"
            )
        joint_hidden_dims = tuple(joint_hidden_dims)
        for width in joint_hidden_dims:
            check_positive("joint_hidden_dims", width)
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.joint_hidden_dims = tuple(int(w) for w in joint_hidden_dims)
        self.head1 = keras.layers.Dense(num_classes, dtype="float32", name="head1")
        self.head2 = keras.layers.Dense(num_classes, dtype="float32", name="head2")
        self.joint_layers = [
            keras.layers.Dense(width, activation="relu", dtype="float32", name=f"joint_hidden{i}")
            for i, width in enumerate(self.joint_hidden_dims)
        ] + [keras.layers.Dense(num_classes, dtype="float32", name="joint_head")]

    def build(self, z1_shape, z2_shape=None):
        z2_shape = z1_shape if z2_shape is None else z2_shape
        self.head1.build(z1_shape)
        self.head2.build(z2_shape)
        width = z1_shape[-1] + z2_shape[-1]
        for layer in self.joint_layers:
            layer.build((None, width))
            width = layer.units
        self.built = True

    @staticmethod
    def _dense(layer, x, frozen):
        if not frozen:
            return layer(x)
        y = ops.matmul(x, ops.stop_gradient(layer.kernel)) + ops.stop_gradient(layer.bias)
        return layer.activation(y)

    def call(self, z1, z2, frozen=False):
        z1, z2 = ops.cast(z1, "float32"), ops.cast(z2, "float32")
        logits1 = self._dense(self.head1, z1, frozen)
        logits2 = self._dense(self.head2, z2, frozen)
        h = ops.concatenate([z1, z2], axis=-1)
        for layer in self.joint_layers:
            h = self._dense(layer, h, frozen)
        return logits1, logits2, h

    def compute_output_shape(self, z1_shape, z2_shape=None):
        shape = (z1_shape[0], self.num_classes)
        return shape, shape, shape

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, joint_hidden_dims=self.joint_hidden_dims)
        return config
