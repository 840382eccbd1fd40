"""A linear classification head for probes and linear evaluation."""

import keras
from keras import layers

from keras_pid_ssl.utils.validation import check_int


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class LinearClassifier(keras.layers.Layer):
    """`Dense(num_classes)` on (optionally batch-normalised) features.

    Returns logits. `use_batch_norm=True` puts a non-affine batch norm before
    the linear map, a common trick of linear probes (e.g. MAE's) that makes
    the probe insensitive to the feature scale; it stays a linear classifier.

    Args:
        num_classes: number of classes (>= 2).
        use_batch_norm: normalise features before the linear map.

    Example:

    >>> head = LinearClassifier(num_classes=10)
    >>> tuple(head(np.zeros((4, 32), "float32")).shape)
    (4, 10)
    """

    def __init__(self, num_classes, use_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        check_int("num_classes", num_classes, 2)
        self.num_classes = num_classes
        self.use_batch_norm = use_batch_norm
        self.norm = (
            layers.BatchNormalization(center=False, scale=False, name="norm")
            if use_batch_norm
            else None
        )
        self.dense = layers.Dense(num_classes, name="logits")

    def build(self, input_shape):
        if self.norm is not None:
            self.norm.build(input_shape)
        self.dense.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        if self.norm is not None:
            x = self.norm(x, training=training)
        return self.dense(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, use_batch_norm=self.use_batch_norm)
        return config
