"""Common base of the SSL losses: a float32 layer that reports its terms."""

import keras
from keras import ops

from keras_pid_ssl.distribute.replicas import gather_replicas
from keras_pid_ssl.utils.validation import check_embeddings


class SSLLoss(keras.layers.Layer):
    """Base class of the two-view SSL losses.

    A loss is a `keras.layers.Layer` (not a `keras.losses.Loss`) for two
    reasons: SSL losses take two or three embeddings rather than
    `(y_true, y_pred)`, and a layer's coefficients can be Keras variables that a
    model tracks, saves and restores with its weights (the PID protocol changes
    them during training). The layer always computes in float32, also under a
    mixed-precision policy.

    Subclasses implement `terms(z1, z2)`, returning a dict of the weighted terms
    that add up to `"loss"`, plus any diagnostics; `term_names` lists the keys.
    The term named by `invariance_term` is the one a PID loss re-weights.
    """

    invariance_term = "invariance"

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.built = True

    @property
    def term_names(self):
        raise NotImplementedError

    def terms(self, z1, z2):
        raise NotImplementedError

    def call(self, z1, z2):
        return self.terms(z1, z2)["loss"]

    def _set_checked(self, check, **arguments):
        """Keeps each constructor argument as the attribute of its name, as
        `check(name, value)` returns it (e.g. `check_positive`, a float)."""
        for name, value in arguments.items():
            setattr(self, name, check(name, value))

    def _prepare(self, *embeddings):
        check_embeddings(type(self).__name__, *embeddings)
        # Statistics over the global batch under tf.distribute (all replicas'
        # rows, with gradients); the identity on one device and on JAX, whose
        # DataParallel step is global already. See kps.distribute.
        return [gather_replicas(ops.cast(z, "float32")) for z in embeddings]

    def compute_output_shape(self, *args):
        return ()
