"""`GaussianBlur`: Gaussian blur with a random sigma per image."""

import numbers

import keras

from keras_pid_ssl.augment.base import AugmentationLayer


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class GaussianBlur(AugmentationLayer):
    """Blurs every image with a Gaussian of its own `sigma ~ U(sigma)`.

    The BYOL / Barlow Twins / VICReg recipes blur with a 23x23 kernel at
    224 px (about a tenth of the image side) and `sigma ~ U(0.1, 2.0)` drawn per
    image, with reflected borders (torchvision's `GaussianBlur`). Keras core's
    `RandomGaussianBlur` draws one sigma per batch, hence this layer; wrap it in
    `RandomApply` for the blur probability.

    The separable kernel is applied as a weighted sum of shifted copies of the
    reflect-padded image, which takes a different kernel per image on every
    backend and any batch size at `O(kernel_size)` cost per pixel.

    Args:
        kernel_size: odd kernel side in pixels; `None` picks the odd integer
            nearest a tenth of the image side (23 at 224 px, at least 3).
        sigma: `(low, high)` range of the standard deviation in pixels, or a
            number for a fixed one.
        seed: integer seed.
        **kwargs: base layer arguments (`name`, `dtype`).

    Example:

    >>> blur = GaussianBlur(kernel_size=5, sigma=(0.1, 2.0))
    >>> tuple(blur(np.random.rand(4, 32, 32, 3).astype("float32")).shape)
    (4, 32, 32, 3)
    """

    def __init__(self, kernel_size=None, sigma=(0.1, 2.0), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if kernel_size is not None and (
            not isinstance(kernel_size, numbers.Integral) or kernel_size < 1 or kernel_size % 2 == 0
        ):
            raise ValueError(
                "`kernel_size` must be a positive odd int or None. Received: "
                f"kernel_size={kernel_size!r}"
            )
        if isinstance(sigma, numbers.Real):
            sigma = (sigma, sigma)
        if (
            not isinstance(sigma, (tuple, list))
            or len(sigma) != 2
            or not all(isinstance(s, numbers.Real) for s in sigma)
            or not 0 < sigma[0] <= sigma[1]
        ):
            raise ValueError(
                "`sigma` must be a positive number or a pair (low, high) with "
                f"0 < low <= high. Received: sigma={sigma!r}"
            )
        self.kernel_size = None if kernel_size is None else int(kernel_size)
        self.sigma = (float(sigma[0]), float(sigma[1]))

    def kernel_size_for(self, height, width):
        if self.kernel_size is not None:
            return self.kernel_size
        return max(3, 2 * int(round(0.1 * min(height, width) / 2.0 - 0.5)) + 1)

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws one sigma per image: `{"sigma": (batch,)}`."""
        images = self.images_of(data)
        batch_size = self.batch_size_of(images)
        if not training:
            return None
        sigma = self.backend.random.uniform(
            (batch_size,), minval=self.sigma[0], maxval=self.sigma[1], seed=self.seeds(seed)()
        )
        return {"sigma": sigma}

    def _blur_axis(self, images, weights, radius, axis):
        ops = self.backend
        pad = [[0, 0]] * 4
        pad[axis] = [radius, radius]
        padded = ops.numpy.pad(images, pad, mode="reflect")
        length = ops.shape(images)[axis]
        out = None
        for t in range(2 * radius + 1):
            index = [slice(None)] * 4
            index[axis] = slice(t, t + length)
            term = padded[tuple(index)] * ops.numpy.reshape(weights[:, t], (-1, 1, 1, 1))
            out = term if out is None else out + term
        return out

    def transform_images(self, images, transformation, training=True):
        ops = self.backend
        images = ops.cast(images, self.compute_dtype)
        if not training or transformation is None:
            return images
        height, width = ops.shape(images)[1], ops.shape(images)[2]
        size = self.kernel_size_for(height, width)
        radius = size // 2
        if radius >= min(height, width):
            raise ValueError(
                f"`GaussianBlur` kernel_size={size} is too large for {height}x{width} "
                "images (reflect padding needs kernel_size // 2 < image side)."
            )
        if radius == 0:
            return images
        sigma = ops.cast(transformation["sigma"], images.dtype)
        offsets = ops.numpy.arange(-radius, radius + 1, dtype=images.dtype)
        weights = ops.numpy.exp(-0.5 * ops.numpy.square(offsets[None, :] / sigma[:, None]))
        weights = weights / ops.numpy.sum(weights, axis=1, keepdims=True)
        images = self._blur_axis(images, weights, radius, axis=1)
        return self._blur_axis(images, weights, radius, axis=2)

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size, sigma=self.sigma)
        return config
