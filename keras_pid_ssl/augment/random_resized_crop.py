"""`RandomResizedCrop`: the crop of every SSL recipe, one box per image."""

import math
import numbers

import keras

from keras_pid_ssl.augment.base import AugmentationLayer
from keras_pid_ssl.utils.validation import check_image_size

_ATTEMPTS = 10


def _pair(name, value, positive=True):
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, numbers.Real) for v in value)
        or value[0] > value[1]
        or (positive and value[0] <= 0)
    ):
        raise ValueError(
            f"`{name}` must be a pair (low, high) with 0 < low <= high. Received: {name}={value!r}"
        )
    return (float(value[0]), float(value[1]))


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class RandomResizedCrop(AugmentationLayer):
    """Crops a random box of random area and aspect ratio, resized to `size`.

    Inception-style cropping as in torchvision's `RandomResizedCrop`, which
    the SimCLR, BYOL, Barlow Twins and VICReg recipes use: the box covers a
    fraction `U(scale)` of the image area with aspect ratio
    `exp(U(log ratio))`; ten candidates are drawn and the first that fits is
    kept, else the largest central box within `ratio`. Every image of a batch
    gets its own box. The box (integer pixels, as in torchvision) is resized
    bilinearly with half-pixel centres, without antialiasing (as
    `tf.image.crop_and_resize`): crops larger than `size` alias slightly, which
    does not arise for CIFAR/STL-10 sizes, where crops are upsampled.

    Keras core has `RandomCrop` (fixed size, one box per batch) and
    `RandomZoom`, but no per-image random-area crop, hence this layer.
    `training=False` returns the largest central crop with the aspect ratio of
    `size`, resized (an evaluation view).

    Args:
        size: output `(height, width)`, or an int for a square.
        scale: range of the box area as a fraction of the image area.
        ratio: range of the box aspect ratio (width / height).
        seed: integer seed of the random boxes.
        **kwargs: base layer arguments (`name`, `dtype`).

    Example:

    >>> crop = RandomResizedCrop(32, scale=(0.08, 1.0))
    >>> tuple(crop(np.random.rand(8, 48, 40, 3).astype("float32")).shape)
    (8, 32, 32, 3)
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.size = check_image_size("size", size)
        self.scale = _pair("scale", scale)
        if self.scale[1] > 1.0:
            raise ValueError(
                "`scale` is a fraction of the image area and must lie in (0, 1]. "
                f"Received: scale={scale!r}"
            )
        self.ratio = _pair("ratio", ratio)

    def _image_hw(self, images):
        shape = self.backend.shape(images)
        height, width = shape[-3], shape[-2]
        if not isinstance(height, int) or not isinstance(width, int):
            raise ValueError(
                "`RandomResizedCrop` needs images with a known height and width. "
                f"Received: shape={tuple(shape)}"
            )
        return height, width

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws one crop box per image: `{"boxes": (batch, 4)}` as
        `(top, left, height, width)` in pixels (float32 holding integers)."""
        ops = self.backend
        images = self.images_of(data)
        batch_size = self.batch_size_of(images)
        height, width = self._image_hw(images)
        if not training:
            return {"boxes": self._central_boxes(batch_size, height, width)}
        next_seed = self.seeds(seed)
        area = float(height * width)
        shape = (batch_size, _ATTEMPTS)
        target_area = area * ops.random.uniform(
            shape, minval=self.scale[0], maxval=self.scale[1], seed=next_seed()
        )
        log_ratio = ops.random.uniform(
            shape,
            minval=math.log(self.ratio[0]),
            maxval=math.log(self.ratio[1]),
            seed=next_seed(),
        )
        aspect = ops.numpy.exp(log_ratio)
        box_w = ops.numpy.round(ops.numpy.sqrt(target_area * aspect))
        box_h = ops.numpy.round(ops.numpy.sqrt(target_area / aspect))
        fits = ops.numpy.logical_and(
            ops.numpy.logical_and(box_w >= 1.0, box_w <= float(width)),
            ops.numpy.logical_and(box_h >= 1.0, box_h <= float(height)),
        )
        # Index of the first candidate that fits (argmax of a 0/1 vector).
        fits_f = ops.cast(fits, "float32")
        first = ops.numpy.argmax(fits_f, axis=1)
        found = ops.numpy.max(fits_f, axis=1) > 0.0
        pick = ops.nn.one_hot(first, _ATTEMPTS, dtype="float32")
        box_h = ops.numpy.sum(box_h * pick, axis=1)
        box_w = ops.numpy.sum(box_w * pick, axis=1)

        fallback = self._fallback_boxes(batch_size, height, width)
        box_h = ops.numpy.where(found, box_h, fallback[:, 2])
        box_w = ops.numpy.where(found, box_w, fallback[:, 3])
        # torchvision: top = randint(0, height - box_h + 1), left likewise.
        offsets = ops.random.uniform((batch_size, 2), seed=next_seed())
        top = ops.numpy.floor(offsets[:, 0] * (float(height) - box_h + 1.0))
        left = ops.numpy.floor(offsets[:, 1] * (float(width) - box_w + 1.0))
        top = ops.numpy.where(found, ops.numpy.minimum(top, height - box_h), fallback[:, 0])
        left = ops.numpy.where(found, ops.numpy.minimum(left, width - box_w), fallback[:, 1])
        return {"boxes": ops.numpy.stack([top, left, box_h, box_w], axis=1)}

    def _constant_boxes(self, batch_size, box):
        ops = self.backend
        row = ops.convert_to_tensor([box], dtype="float32")
        return ops.numpy.tile(row, [batch_size, 1])

    def _fallback_boxes(self, batch_size, height, width):
        # torchvision's fallback: the whole image, clipped to the ratio range.
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            box_w, box_h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            box_h, box_w = height, round(height * self.ratio[1])
        else:
            box_w, box_h = width, height
        top, left = (height - box_h) // 2, (width - box_w) // 2
        return self._constant_boxes(batch_size, (top, left, box_h, box_w))

    def _central_boxes(self, batch_size, height, width):
        target = self.size[1] / self.size[0]
        box_h = min(height, max(1, round(width / target)))
        box_w = min(width, max(1, round(height * target)))
        top, left = (height - box_h) // 2, (width - box_w) // 2
        return self._constant_boxes(batch_size, (top, left, box_h, box_w))

    def _sample_points(self, start, length, out_size, in_size):
        """Source rows (or columns) of `out_size` half-pixel-centred samples of
        `[start, start + length)`: lower index, upper index, upper weight."""
        ops = self.backend
        grid = (ops.numpy.arange(out_size, dtype="float32") + 0.5) / float(out_size)
        coords = start[:, None] + grid[None, :] * length[:, None] - 0.5
        # Replicate the crop's border pixels, as resizing the cropped image does.
        coords = ops.numpy.clip(coords, start[:, None], (start + length - 1.0)[:, None])
        lower = ops.numpy.floor(coords)
        weight = coords - lower
        upper = ops.numpy.minimum(lower + 1.0, float(in_size - 1))
        return ops.cast(lower, "int32"), ops.cast(upper, "int32"), weight

    def transform_images(self, images, transformation, training=True):
        ops = self.backend
        images = ops.cast(images, self.compute_dtype)
        height, width = self._image_hw(images)
        boxes = ops.cast(transformation["boxes"], "float32")
        out_h, out_w = self.size
        y0, y1, wy = self._sample_points(boxes[:, 0], boxes[:, 2], out_h, height)
        x0, x1, wx = self._sample_points(boxes[:, 1], boxes[:, 3], out_w, width)
        shape = ops.shape(images)
        batch_size, channels = shape[0], shape[3]
        flat = ops.numpy.reshape(images, (-1, channels))
        base = ops.numpy.arange(batch_size, dtype="int32")[:, None, None] * (height * width)

        def gather(rows, cols):
            index = base + rows[:, :, None] * width + cols[:, None, :]
            return ops.numpy.take(flat, ops.numpy.reshape(index, (-1,)), axis=0)

        def lerp(a, b, w):
            return a + (b - a) * w

        wx_flat = ops.numpy.reshape(ops.numpy.tile(wx[:, None, :], [1, out_h, 1]), (-1, 1))
        wy_flat = ops.numpy.reshape(ops.numpy.tile(wy[:, :, None], [1, 1, out_w]), (-1, 1))
        wx_flat = ops.cast(wx_flat, images.dtype)
        wy_flat = ops.cast(wy_flat, images.dtype)
        top = lerp(gather(y0, x0), gather(y0, x1), wx_flat)
        bottom = lerp(gather(y1, x0), gather(y1, x1), wx_flat)
        out = lerp(top, bottom, wy_flat)
        return ops.numpy.reshape(out, (batch_size, out_h, out_w, channels))

    def compute_output_shape(self, input_shape):
        input_shape = list(input_shape)
        input_shape[-3], input_shape[-2] = self.size
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(size=self.size, scale=self.scale, ratio=self.ratio)
        return config
