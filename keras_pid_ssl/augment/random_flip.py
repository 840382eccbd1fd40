"""`RandomFlip`: flip each image with probability one half."""

import keras

from keras_pid_ssl.augment.base import AugmentationLayer
from keras_pid_ssl.utils.validation import check_choice

MODES = ("horizontal", "vertical", "horizontal_and_vertical")


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class RandomFlip(AugmentationLayer):
    """Flips each image of a batch left-right (and/or up-down) with probability 1/2.

    The flip of every SSL recipe and of the linear-evaluation protocol, with
    `keras.layers.RandomFlip`'s arguments. Unlike the Keras core layer, its
    draws follow `kps.augment.base.key_scope`, so `kps.data` pipelines key
    it by `(seed, epoch, step)` like the other layers of this package.

    Args:
        mode: `"horizontal"` (left-right), `"vertical"` (up-down) or
            `"horizontal_and_vertical"` (each drawn independently).
        seed: integer seed.
        **kwargs: base layer arguments (`name`, `dtype`).

    Example:

    >>> flip = RandomFlip("horizontal", seed=0)
    >>> tuple(flip(np.random.rand(4, 8, 8, 3).astype("float32")).shape)
    (4, 8, 8, 3)
    """

    def __init__(self, mode="horizontal", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_choice("mode", mode, MODES)
        self.mode = mode

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws `{"horizontal": (batch,) bool, "vertical": (batch,) bool}` (the modes in use)."""
        images = self.images_of(data)
        batch_size = self.batch_size_of(images)
        if not training:
            return None
        next_seed = self.seeds(seed)
        return {
            axis: self.backend.random.uniform((batch_size,), seed=next_seed()) < 0.5
            for axis in ("horizontal", "vertical")
            if axis in self.mode
        }

    def transform_images(self, images, transformation, training=True):
        ops = self.backend
        images = ops.cast(images, self.compute_dtype)
        if not training or transformation is None:
            return images
        for axis, image_axis in (("vertical", 1), ("horizontal", 2)):
            if axis in transformation:
                flip = ops.numpy.reshape(transformation[axis], (-1, 1, 1, 1))
                images = ops.numpy.where(flip, ops.numpy.flip(images, axis=image_axis), images)
        return images

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config
