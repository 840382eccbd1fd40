"""The base class of this package's augmentation layers.

Keras core's image preprocessing layers share `BaseImagePreprocessingLayer`:
called inside a `tf.data` pipeline it switches the layer's ops to the
TensorFlow backend whatever `KERAS_BACKEND` is (and keeps the computation on
the CPU in a Grain pipeline); called eagerly it uses the active backend. Its
subclasses draw their random parameters in `get_random_transformation` and apply
them in `transform_images`, so the same parameters can be re-applied. The class
is not exported by `keras.layers`; `keras` is pinned to one version in
`pyproject.toml`, and the tests run every layer inside `tf.data` and eagerly on
each backend, so a change of that internal API shows up at once.
"""

import numbers

import keras
from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (  # noqa: E501
    BaseImagePreprocessingLayer,
)

__all__ = ["AugmentationLayer", "check_value_range"]


def check_value_range(value_range):
    if (
        not isinstance(value_range, (tuple, list))
        or len(value_range) != 2
        or not all(isinstance(v, numbers.Real) for v in value_range)
        or value_range[0] >= value_range[1]
    ):
        raise ValueError(
            "`value_range` must be a pair (low, high) with low < high, e.g. (0, 1) "
            f"or (0, 255). Received: value_range={value_range!r}"
        )
    return (float(value_range[0]), float(value_range[1]))


class AugmentationLayer(BaseImagePreprocessingLayer):
    """Shared plumbing: channels-last images, a seed, labels passed through.

    Subclasses implement `get_random_transformation(images, training, seed)`
    (per-sample parameters, leading dimension = batch size) and
    `transform_images(images, transformation, training)`.
    """

    _USE_BASE_FACTOR = False

    def __init__(self, seed=None, **kwargs):
        data_format = kwargs.pop("data_format", None)
        super().__init__(data_format=data_format, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(
                f"`{type(self).__name__}` supports channels_last images only. "
                f"Received: data_format={self.data_format!r}"
            )
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    def _images_of(self, data):
        return data["images"] if isinstance(data, dict) else data

    def _batch_size(self, images):
        shape = self.backend.shape(images)
        if len(shape) == 3:
            return 1
        if len(shape) == 4:
            return shape[0]
        raise ValueError(
            f"`{type(self).__name__}` expects images of shape (height, width, "
            f"channels) or (batch_size, height, width, channels). Received: "
            f"shape={tuple(shape)}"
        )

    def _seed(self, seed):
        if seed is None:
            return self._get_seed_generator(self.backend._backend)
        return seed

    def transform_single_image(self, image, transformation, training=True):
        images = self.backend.numpy.expand_dims(image, axis=0)
        outputs = self.transform_images(images, transformation, training=training)
        return self.backend.numpy.squeeze(outputs, axis=0)

    def transform_labels(self, labels, transformation, training=True):
        return labels

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(seed=self.seed)
        return config
