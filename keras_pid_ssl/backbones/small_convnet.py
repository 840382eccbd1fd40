"""A small convolutional backbone for tests, small images and quick runs."""

import keras
from keras import layers

from keras_pid_ssl.backbones.blocks import FunctionalBackbone
from keras_pid_ssl.backbones.blocks import check_input_shape
from keras_pid_ssl.backbones.blocks import conv_bn_relu


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class SmallConvNet(FunctionalBackbone):
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
        input_shape = check_input_shape(input_shape)
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ValueError(
                f"`widths` must be a non-empty list of positive ints. Received: widths={widths}"
            )
        inputs = keras.Input(shape=input_shape, name="images")
        x = inputs
        for i, width in enumerate(widths):
            strides = 1 if i == 0 else 2
            x = conv_bn_relu(x, width, 3, strides, bn_momentum, synchronized_bn, f"block{i + 1}")
        outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.image_shape = input_shape
        self.widths = widths
        self.bn_momentum = bn_momentum
        self.synchronized_bn = synchronized_bn
