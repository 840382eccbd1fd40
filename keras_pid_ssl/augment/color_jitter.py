"""`ColorJitter`: torchvision's colour jitter, the one the SSL recipes specify."""

import keras

from keras_pid_ssl.augment.base import AugmentationLayer
from keras_pid_ssl.augment.base import check_value_range
from keras_pid_ssl.utils.serialization import stored_arguments
from keras_pid_ssl.utils.validation import check_in_range
from keras_pid_ssl.utils.validation import check_non_negative

_OPERATIONS = ("brightness", "contrast", "saturation", "hue")


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class ColorJitter(AugmentationLayer):
    """Random brightness, contrast, saturation and hue, per image, in a random order.

    The published recipes (SimCLR, BYOL, Barlow Twins, VICReg: "colour jitter
    0.4/0.4/0.2/0.1") are defined by torchvision's `ColorJitter`, and this
    layer has its semantics, with factors drawn per image:

    - brightness `b`: `x * f`, `f ~ U(max(0, 1 - b), 1 + b)`;
    - contrast `c`: `f * x + (1 - f) * mean(gray(x))`, `f ~ U(max(0, 1 - c), 1 + c)`;
    - saturation `s`: `f * x + (1 - f) * gray(x)`, `f ~ U(max(0, 1 - s), 1 + s)`;
    - hue `h`: the HSV hue shifted by `U(-h, h)` turns (mod 1);

    each clipped to the value range, applied in an order drawn per image (as
    torchvision draws one per call); `gray` is luma with torchvision's weights
    (0.2989, 0.587, 0.114).

    Why not `keras.layers.RandomColorJitter`: its brightness adds a constant
    (`x + delta`) instead of scaling, its contrast uses per-channel means, its
    saturation scales the HSV saturation and its order is fixed, so the
    published strengths would give a different distribution. It still works as
    a drop-in step (`kps.augment.RandomApply(keras.layers.RandomColorJitter(...))`).

    Images with one channel take brightness and contrast only (saturation and
    hue need colour: pass 0 for them).

    Args:
        brightness: brightness strength `b >= 0`.
        contrast: contrast strength `c >= 0`.
        saturation: saturation strength `s >= 0`.
        hue: hue strength `h` in `[0, 0.5]`.
        random_order: apply the four operations in an order drawn per image
            (torchvision); `False` applies them in the order above.
        value_range: the `(low, high)` range of the input pixels.
        seed: integer seed.
        **kwargs: base layer arguments (`name`, `dtype`).

    Example:

    >>> jitter = ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
    >>> tuple(jitter(np.random.rand(8, 32, 32, 3).astype("float32")).shape)
    (8, 32, 32, 3)
    """

    def __init__(
        self,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        hue=0.0,
        random_order=True,
        value_range=(0, 1),
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        self.brightness = check_non_negative("brightness", brightness)
        self.contrast = check_non_negative("contrast", contrast)
        self.saturation = check_non_negative("saturation", saturation)
        self.hue = check_in_range("hue", hue, 0, 0.5)
        self.random_order = bool(random_order)
        self.value_range = check_value_range(value_range)

    @property
    def _active(self):
        strengths = dict(
            brightness=self.brightness,
            contrast=self.contrast,
            saturation=self.saturation,
            hue=self.hue,
        )
        return [name for name in _OPERATIONS if strengths[name] > 0.0]

    def _check_channels(self, images):
        channels = self.backend.shape(images)[-1]
        if channels == 3:
            return
        if channels == 1 and self.saturation == 0.0 and self.hue == 0.0:
            return
        raise ValueError(
            "`ColorJitter` needs RGB images (3 channels); images with one channel "
            "take brightness and contrast only (saturation=0, hue=0). Received "
            f"images with {channels} channels, saturation={self.saturation}, "
            f"hue={self.hue}."
        )

    def get_random_transformation(self, data, training=True, seed=None):
        """Draws per-image factors `{name: (batch,)}` and, with `random_order`,
        `order`: `(batch, 4)` ranks of the operations."""
        ops = self.backend
        images = self.images_of(data)
        batch_size = self.batch_size_of(images)
        if not training:
            return None
        next_seed = self.seeds(seed)

        def factor(strength):
            return ops.random.uniform(
                (batch_size,),
                minval=max(0.0, 1.0 - strength),
                maxval=1.0 + strength,
                seed=next_seed(),
            )

        transformation = {
            "brightness": factor(self.brightness),
            "contrast": factor(self.contrast),
            "saturation": factor(self.saturation),
            "hue": ops.random.uniform(
                (batch_size,), minval=-self.hue, maxval=self.hue, seed=next_seed()
            ),
        }
        if self.random_order:
            # argsort of i.i.d. uniforms: a uniformly random permutation per image.
            keys = ops.random.uniform((batch_size, len(_OPERATIONS)), seed=next_seed())
            transformation["order"] = ops.numpy.argsort(keys, axis=1)
        return transformation

    def _gray(self, images):
        if self.backend.shape(images)[-1] == 1:
            return images
        weights = self.backend.convert_to_tensor([0.2989, 0.587, 0.114], dtype=images.dtype)
        return self.backend.numpy.sum(images * weights, axis=-1, keepdims=True)

    def _hue(self, images, shift):
        ops = self.backend
        hsv = ops.image.rgb_to_hsv(images)
        hue = hsv[..., 0] + ops.numpy.reshape(shift, (-1, 1, 1))
        hue = hue - ops.numpy.floor(hue)
        hsv = ops.numpy.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1)
        return ops.numpy.clip(ops.image.hsv_to_rgb(hsv), 0.0, 1.0)

    def _step(self, images, transformation, runs):
        """One step of the per-image order: `runs[name]` (batch,) says which
        images apply operation `name` now (at most one per image).

        Brightness, contrast and saturation are one blend `f x + (1 - f) o`
        with a per-image partner `o` (0, the mean grey level, the grey image)
        and factor (1 for images that blend nothing now: then `x` is returned
        exactly). The hue shift, the costly part (RGB -> HSV -> RGB), runs only
        on the images whose turn it is, gathered and scattered back, so each
        image pays for it once whatever the order (on TensorFlow, i.e. inside
        `tf.data`; other backends shift every image and keep the due ones, as
        data-dependent shapes would make JAX recompile).
        """
        ops = self.backend

        def per_image(mask):
            return ops.numpy.reshape(mask, (-1, 1, 1, 1))

        blends = [n for n in ("brightness", "contrast", "saturation") if n in runs]
        if blends:
            gray = self._gray(images) if ("contrast" in runs or "saturation" in runs) else None
            partner = ops.numpy.zeros_like(images[..., :1])
            factor = ops.numpy.ones_like(transformation["brightness"])
            for name in blends:
                if name == "contrast":
                    partner = ops.numpy.where(
                        per_image(runs[name]),
                        ops.numpy.mean(gray, axis=(1, 2, 3), keepdims=True),
                        partner,
                    )
                elif name == "saturation":
                    partner = ops.numpy.where(per_image(runs[name]), gray, partner)
                factor = ops.numpy.where(
                    runs[name], ops.cast(transformation[name], factor.dtype), factor
                )
            factor = ops.cast(per_image(factor), images.dtype)
            images = ops.numpy.clip(factor * images + (1.0 - factor) * partner, 0.0, 1.0)
        if "hue" in runs and ops.name != "tensorflow":
            # JAX would recompile for every subset size: shift all, keep some.
            shifted = self._hue(images, ops.cast(transformation["hue"], images.dtype))
            images = ops.numpy.where(per_image(runs["hue"]), shifted, images)
        elif "hue" in runs:
            index = ops.numpy.nonzero(runs["hue"])[0]
            shifted = self._hue(
                ops.numpy.take(images, index, axis=0),
                ops.cast(ops.numpy.take(transformation["hue"], index, axis=0), images.dtype),
            )
            images = ops.core.scatter_update(images, ops.numpy.expand_dims(index, 1), shifted)
        return images

    def transform_images(self, images, transformation, training=True):
        ops = self.backend
        images = ops.cast(images, self.compute_dtype)
        if not training or transformation is None or not self._active:
            return images
        self._check_channels(images)
        low, high = self.value_range
        images = (images - low) / (high - low)
        if self.random_order:
            order = ops.cast(transformation["order"], "int32")
        for step in range(len(_OPERATIONS)):
            if self.random_order:
                runs = {n: order[:, _OPERATIONS.index(n)] == step for n in self._active}
            else:
                name = _OPERATIONS[step]
                if name not in self._active:
                    continue
                runs = {name: ops.numpy.ones_like(transformation[name], dtype="bool")}
            images = self._step(images, transformation, runs)
        return images * (high - low) + low

    def get_config(self):
        return {**super().get_config(), **stored_arguments(self, ColorJitter)}
