"""ResNet backbones (He et al., CVPR 2016, arXiv 1512.03385)."""

import keras
from keras import layers

from keras_pid_ssl.backbones.blocks import FunctionalBackbone
from keras_pid_ssl.backbones.blocks import batch_norm
from keras_pid_ssl.backbones.blocks import check_input_shape
from keras_pid_ssl.backbones.blocks import conv
from keras_pid_ssl.backbones.blocks import conv_bn_relu
from keras_pid_ssl.utils.validation import check_choice

_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}


def _block(x, filters, strides, kind, bn_momentum, synchronized, name):
    expansion = 4 if kind == "bottleneck" else 1
    shortcut = x
    if strides != 1 or x.shape[-1] != filters * expansion:
        shortcut = conv(filters * expansion, 1, strides, f"{name}_proj_conv")(x)
        shortcut = batch_norm(bn_momentum, synchronized, f"{name}_proj_bn")(shortcut)
    if kind == "basic":
        convs = [(filters, 3, strides), (filters, 3, 1)]
    else:
        convs = [(filters, 1, 1), (filters, 3, strides), (filters * 4, 1, 1)]
    for i, (f, k, s) in enumerate(convs):
        x = conv(f, k, s, f"{name}_conv{i + 1}")(x)
        x = batch_norm(bn_momentum, synchronized, f"{name}_bn{i + 1}")(x)
        if i < len(convs) - 1:
            x = layers.ReLU(name=f"{name}_relu{i + 1}")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.ReLU(name=f"{name}_out")(x)


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class ResNet(FunctionalBackbone):
    """A ResNet feature extractor returning the globally pooled features.

    The `"imagenet"` variant is the standard network (7x7 stride-2 stem and a
    3x3 stride-2 max-pool); the `"cifar"` variant replaces the stem by a 3x3
    stride-1 convolution without max-pool, as in the SimCLR / Barlow Twins
    CIFAR experiments and solo-learn. The classifier is dropped: the output is
    the `(batch_size, 512)` (ResNet-18/34) or `(batch_size, 2048)` (ResNet-50)
    feature vector. Inputs are float images (any fixed scale, e.g. [0, 1]).

    Args:
        depth: 18, 34 or 50.
        variant: `"cifar"` or `"imagenet"`.
        input_shape: `(height, width, channels)`.
        width: channels of the first stage (64 in the paper); stages double it.
        bn_momentum: moving-average momentum of the batch norms.
        synchronized_bn: use `BatchNormalization(synchronized=True)`, which
            computes batch statistics over all replicas under `tf.distribute`.

    Example:

    >>> encoder = ResNet(depth=18, variant="cifar", input_shape=(32, 32, 3))
    >>> encoder.output_shape
    (None, 512)
    """

    def __init__(
        self,
        depth=18,
        variant="cifar",
        input_shape=(32, 32, 3),
        width=64,
        bn_momentum=0.9,
        synchronized_bn=False,
        name=None,
        **kwargs,
    ):
        check_choice("depth", depth, tuple(_STAGES))
        check_choice("variant", variant, ("cifar", "imagenet"))
        input_shape = check_input_shape(input_shape)
        kind, blocks = _STAGES[depth]
        inputs = keras.Input(shape=input_shape, name="images")
        stem_kernel, stem_strides = (3, 1) if variant == "cifar" else (7, 2)
        x = conv_bn_relu(
            inputs, width, stem_kernel, stem_strides, bn_momentum, synchronized_bn, "stem"
        )
        if variant == "imagenet":
            x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
        for stage, num_blocks in enumerate(blocks):
            for b in range(num_blocks):
                x = _block(
                    x,
                    width * 2**stage,
                    2 if (b == 0 and stage > 0) else 1,
                    kind,
                    bn_momentum,
                    synchronized_bn,
                    f"stage{stage + 1}_block{b + 1}",
                )
        outputs = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        super().__init__(
            inputs=inputs, outputs=outputs, name=name or f"resnet{depth}_{variant}", **kwargs
        )
        self.depth = depth
        self.variant = variant
        self.image_shape = input_shape
        self.width = width
        self.bn_momentum = bn_momentum
        self.synchronized_bn = synchronized_bn


def ResNet18(input_shape=(32, 32, 3), variant="cifar", **kwargs):
    """ResNet-18 feature extractor (512 features). See `ResNet`."""
    return ResNet(depth=18, variant=variant, input_shape=input_shape, **kwargs)


def ResNet34(input_shape=(32, 32, 3), variant="cifar", **kwargs):
    """ResNet-34 feature extractor (512 features). See `ResNet`."""
    return ResNet(depth=34, variant=variant, input_shape=input_shape, **kwargs)


def ResNet50(input_shape=(224, 224, 3), variant="imagenet", **kwargs):
    """ResNet-50 feature extractor (2048 features). See `ResNet`."""
    return ResNet(depth=50, variant=variant, input_shape=input_shape, **kwargs)
