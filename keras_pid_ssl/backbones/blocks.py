"""Building blocks shared by the backbones: convolution, batch norm, checks, config."""

import keras
from keras import layers

from keras_pid_ssl.utils.serialization import stored_arguments


def batch_norm(momentum, synchronized, name):
    # PyTorch's BN momentum 0.1 is Keras's 0.9; epsilon 1e-5 as in torchvision,
    # which the published SSL recipes use.
    return layers.BatchNormalization(
        momentum=momentum, epsilon=1e-5, synchronized=synchronized, name=name
    )


def conv(filters, kernel_size, strides, name):
    """A bias-free, He-initialised, same-padded `Conv2D` (a batch norm follows)."""
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def conv_bn_relu(x, filters, kernel_size, strides, bn_momentum, synchronized, name):
    """`conv`, `batch_norm` and ReLU on `x`, as layers `{name}_conv`, `_bn`, `_relu`."""
    x = conv(filters, kernel_size, strides, f"{name}_conv")(x)
    x = batch_norm(bn_momentum, synchronized, f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def check_input_shape(input_shape):
    """`input_shape` as a tuple `(height, width, channels)`."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be (height, width, channels). Received: input_shape={input_shape}"
        )
    return input_shape


class FunctionalBackbone(keras.Model):
    """Base of the functional backbones, saved as their constructor arguments.

    A subclass builds its graph in `__init__` and keeps each argument as the
    attribute of the same name (`input_shape` as `image_shape`, since
    `Model.input_shape` is Keras's); `get_config` reads them back with
    `trainable`, and `from_config` calls the constructor again.
    """

    def get_config(self):
        arguments = stored_arguments(self, type(self), attributes={"input_shape": "image_shape"})
        return {**arguments, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
