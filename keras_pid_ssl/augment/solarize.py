"""`Solarize`: invert the pixels above a threshold."""

import keras

from keras_pid_ssl.augment.base import AugmentationLayer
from keras_pid_ssl.augment.base import check_value_range
from keras_pid_ssl.utils.validation import check_in_range


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class Solarize(AugmentationLayer):
    """Maps every pixel `x >= threshold` to `high + low - x` (deterministic).

    BYOL and Barlow Twins solarize with a fixed threshold of half the range
    (`x < 0.5 ? x : 1 - x` on `[0, 1]` images), applied with probability 0.0 to
    one view and 0.2 to the other: wrap this layer in `RandomApply`. Keras core's
    `Solarization` draws its threshold from `U(t_low, 255 * t_high)` (the lower
    end unscaled), so it cannot express a fixed threshold; hence this layer.

    Args:
        threshold: the threshold, as a fraction of the value range.
        value_range: the `(low, high)` range of the input pixels.
        **kwargs: base layer arguments (`name`, `dtype`).

    Example:

    ```python
    images = np.array([[[[0.2], [0.7]]]], "float32")  # one 1x2 grey image
    Solarize()(images)  # [[[[0.2], [0.3]]]]
    ```
    """

    def __init__(self, threshold=0.5, value_range=(0, 1), **kwargs):
        kwargs.pop("seed", None)
        super().__init__(seed=None, **kwargs)
        check_in_range("threshold", threshold, 0, 1)  # a fraction of the value range
        self.threshold = float(threshold)
        self.value_range = check_value_range(value_range)

    def get_random_transformation(self, data, training=True, seed=None):
        return None

    def transform_images(self, images, transformation, training=True):
        ops = self.backend
        images = ops.cast(images, self.compute_dtype)
        if not training:
            return images
        low, high = self.value_range
        cut = low + self.threshold * (high - low)
        return ops.numpy.where(images < cut, images, high + low - images)

    def get_config(self):
        config = super().get_config()
        config.pop("seed", None)
        config.update(threshold=self.threshold, value_range=self.value_range)
        return config
