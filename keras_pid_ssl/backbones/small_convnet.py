"""A small convolutional backbone for tests, small images and quick runs."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class SmallConvNet(keras.Model):
    """Conv-BN-ReLU blocks (the first at stride 1, the others at stride 2),
    then global average pooling.

    Args:
        input_shape: `(height, width, channels)`.
        widths: channels of each block; the output has `widths[-1]` features.
        bn_momentum: moving-average momentum of the batch norms.
        synchronized_bn: synchronised batch norm under `tf.distribute`.

    Example:

    >>> encoder = SmallConvNet(input_shape=(28, 28, 1), widths=(16, 32))
    >>> encoder.output_shape
    (None, 32)
    """

    def __init__(
        self,
        input_shape=(28, 28, 1),
        widths=(32, 64, 128),
        bn_momentum=0.9,
        synchronized_bn=False,
        name="small_convnet",
        **kwargs,
    ):
        input_shape = tuple(input_shape)
        widths = tuple(int(w) for w in widths)
        if len(input_shape) != 3:
            raise ValueError(
                "`input_shape` must be (height, width, channels). "
                f"Received: input_shape={input_shape}"
            )
        if not widths or min(widths) < 1:
            raise ValueError(
                f"`widths` must be a non-empty list of positive ints. Received: widths={widths}"
            )
        inputs = keras.Input(shape=input_shape, name="images")
        x = inputs
        for i, width in enumerate(widths):
            x = layers.Conv2D(
                width,
                3,
                strides=1 if i == 0 else 2,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=f"block{i + 1}_conv",
            )(x)
            x = layers.BatchNormalization(
                momentum=bn_momentum,
                epsilon=1e-5,
                synchronized=synchronized_bn,
                name=f"block{i + 1}_bn",
            )(x)
            x = layers.ReLU(name=f"block{i + 1}_relu")(x)
        outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.image_shape = input_shape
        self.widths = widths
        self.bn_momentum = bn_momentum
        self.synchronized_bn = synchronized_bn

    def get_config(self):
        return {
            "input_shape": self.image_shape,
            "widths": self.widths,
            "bn_momentum": self.bn_momentum,
            "synchronized_bn": self.synchronized_bn,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
