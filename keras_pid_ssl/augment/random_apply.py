"""`RandomApply`: apply a layer to each image with probability `rate`."""

import keras

from keras_pid_ssl.augment.base import AugmentationLayer
from keras_pid_ssl.augment.views import build_view
from keras_pid_ssl.utils.validation import check_in_range


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class RandomApply(AugmentationLayer):
    """Applies `layer` to each image of a batch independently with probability `rate`.

    torchvision's `RandomApply` makes one decision per call, which is per image
    in a per-image pipeline; here images are augmented a batch at a time, so the
    decision is drawn per image: the wrapped layer runs on the whole batch and
    each image keeps its augmented or its original version. (KerasCV's
    `RandomApply` does the same, but KerasCV is frozen; Keras core has none.)

    The wrapped layer may be any image-to-image layer that keeps the image
    shape: a Keras core preprocessing layer, one of this package, a
    `keras.layers.Pipeline`, or a KerasCV layer when `keras-cv` is installed.
    Inside `tf.data` it must be `tf.data`-safe (all of those are;
    `keras.Sequential` is not under the JAX backend: use
    `keras.layers.Pipeline`).

    Args:
        layer: the layer to apply.
        rate: probability of applying it to each image.
        seed: integer seed of the per-image decisions.
        **kwargs: base layer arguments (`name`, `dtype`).

    Example:

    >>> jitter = RandomApply(kps.augment.ColorJitter(0.4, 0.4, 0.2, 0.1), rate=0.8)
    >>> tuple(jitter(np.random.rand(8, 32, 32, 3).astype("float32")).shape)
    (8, 32, 32, 3)
    """

    def __init__(self, layer, rate=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(layer, keras.layers.Layer):
            raise ValueError(
                "`layer` must be a Keras layer, e.g. keras.layers.RandomGrayscale(1.0) "
                f"or kps.augment.Solarize(). Received: layer={layer!r}"
            )
        check_in_range("rate", rate, 0, 1)  # a probability
        self.layer = layer
        self.rate = float(rate)

    def build(self, input_shape):
        build_view(self.layer, input_shape)
        self.built = True

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws one decision per image: `{"apply": (batch,) bool}`."""
        images = self.images_of(data)
        batch_size = self.batch_size_of(images)
        if not training:
            return {"apply": self.backend.numpy.zeros((batch_size,), dtype="bool")}
        draws = self.backend.random.uniform((batch_size,), seed=self.seeds(seed)())
        return {"apply": draws < self.rate}

    def transform_images(self, images, transformation, training=True):
        images = self.backend.cast(images, self.compute_dtype)
        if not training or self.rate == 0.0:
            return images
        build_view(self.layer, tuple(images.shape))
        augmented = self.layer(images, training=True)
        in_shape = tuple(self.backend.shape(images))[1:]
        out_shape = tuple(self.backend.shape(augmented))[1:]
        if in_shape != out_shape:
            raise ValueError(
                "`RandomApply` needs a layer that keeps the image shape; "
                f"{self.layer.name!r} maps {in_shape} to {out_shape}."
            )
        augmented = self.backend.cast(augmented, self.compute_dtype)
        apply = self.backend.numpy.reshape(transformation["apply"], (-1, 1, 1, 1))
        return self.backend.numpy.where(apply, augmented, images)

    def get_config(self):
        config = super().get_config()
        config.update(layer=keras.saving.serialize_keras_object(self.layer), rate=self.rate)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
