"""`RandomGrayscale`: turn each image grey with probability `factor`."""

import keras

from keras_pid_ssl.augment.base import AugmentationLayer
from keras_pid_ssl.utils.validation import check_in_range

LUMA = (0.2989, 0.587, 0.114)


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class RandomGrayscale(AugmentationLayer):
    """Replaces each image by its grey level (in every channel) with probability `factor`.

    torchvision's `RandomGrayscale` and `keras.layers.RandomGrayscale`: grey
    is luma with weights (0.2989, 0.587, 0.114), copied to the three channels.
    Unlike the Keras core layer, its draws follow
    `kps.augment.base.key_scope`, so `kps.data` pipelines key it by `(seed,
    epoch, step)` like the other layers of this package. Images with one
    channel are grey already and come back unchanged.

    Args:
        factor: probability of turning each image grey.
        seed: integer seed.
        **kwargs: base layer arguments (`name`, `dtype`).

    Example:

    >>> gray = RandomGrayscale(1.0)
    >>> out = keras.ops.convert_to_numpy(gray(np.random.rand(2, 4, 4, 3).astype("float32")))
    >>> bool(np.allclose(out[..., 0], out[..., 2]))
    True
    """

    def __init__(self, factor=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_in_range("factor", factor, 0, 1)  # a probability
        self.factor = float(factor)

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws one decision per image: `{"grayscale": (batch,) bool}`."""
        images = self.images_of(data)
        batch_size = self.batch_size_of(images)
        if not training:
            return None
        draws = self.backend.random.uniform((batch_size,), seed=self.seeds(seed)())
        return {"grayscale": draws < self.factor}

    def transform_images(self, images, transformation, training=True):
        ops = self.backend
        images = ops.cast(images, self.compute_dtype)
        if not training or transformation is None or ops.shape(images)[-1] == 1:
            return images
        weights = ops.convert_to_tensor(LUMA, dtype=images.dtype)
        gray = ops.numpy.sum(images * weights, axis=-1, keepdims=True)
        gray = ops.numpy.tile(gray, [1, 1, 1, ops.shape(images)[-1]])
        grayscale = ops.numpy.reshape(transformation["grayscale"], (-1, 1, 1, 1))
        return ops.numpy.where(grayscale, gray, images)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config
