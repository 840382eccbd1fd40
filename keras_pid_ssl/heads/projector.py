"""The projector MLP of Barlow Twins / VICReg / SimCLR."""

import keras
from keras import layers

from keras_pid_ssl.utils.serialization import stored_arguments
from keras_pid_ssl.utils.validation import check_int


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class Projector(keras.layers.Layer):
    """(Dense - BatchNorm - ReLU) x len(hidden_dims), then Dense(output_dim).

    As in the official Barlow Twins and VICReg code: hidden Dense layers have
    no bias (the batch norm that follows has one) and the last layer is a plain
    linear map (`output_use_bias=False` as in Barlow Twins; VICReg uses a bias).

    Args:
        hidden_dims: widths (positive ints) of the hidden layers (may be
            empty: a linear map).
        output_dim: width (a positive int) of the embedding the loss sees.
        use_batch_norm: batch norm after each hidden Dense layer.
        output_use_bias: bias on the last Dense layer.
        bn_momentum: moving-average momentum of the batch norms.
        synchronized_bn: synchronised batch norm under `tf.distribute`.

    Example:

    >>> projector = Projector(hidden_dims=(64,), output_dim=32)
    >>> tuple(projector(np.zeros((4, 16), "float32")).shape)
    (4, 32)
    """

    def __init__(
        self,
        hidden_dims=(2048, 2048),
        output_dim=2048,
        use_batch_norm=True,
        output_use_bias=False,
        bn_momentum=0.9,
        synchronized_bn=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(hidden_dims, (str, bytes)) or not hasattr(hidden_dims, "__iter__"):
            raise ValueError(
                "`hidden_dims` must be a tuple of positive ints (the hidden widths), "
                f"e.g. (2048, 2048), or () for a linear map. Received: hidden_dims={hidden_dims!r}"
            )
        # Widths must be ints: int(32.7) would silently build a 32-wide layer.
        hidden_dims = tuple(hidden_dims)
        for i, dim in enumerate(hidden_dims):
            check_int(f"hidden_dims[{i}]", dim, 1)
        check_int("output_dim", output_dim, 1)
        self.hidden_dims = tuple(int(d) for d in hidden_dims)
        self.output_dim = int(output_dim)
        self.use_batch_norm = use_batch_norm
        self.output_use_bias = output_use_bias
        self.bn_momentum = bn_momentum
        self.synchronized_bn = synchronized_bn
        self.blocks = []
        for i, dim in enumerate(self.hidden_dims):
            block = [layers.Dense(dim, use_bias=not use_batch_norm, name=f"dense{i + 1}")]
            if use_batch_norm:
                block.append(
                    layers.BatchNormalization(
                        momentum=bn_momentum,
                        epsilon=1e-5,
                        synchronized=synchronized_bn,
                        name=f"bn{i + 1}",
                    )
                )
            block.append(layers.ReLU(name=f"relu{i + 1}"))
            self.blocks.append(block)
        self.output_dense = layers.Dense(self.output_dim, use_bias=output_use_bias, name="output")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            for layer in block:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        self.output_dense.build(shape)
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            for layer in block:
                if isinstance(layer, layers.BatchNormalization):
                    x = layer(x, training=training)
                else:
                    x = layer(x)
        return self.output_dense(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), **stored_arguments(self, Projector)}
