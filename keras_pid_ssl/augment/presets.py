"""Published augmentation recipes, per view, as `keras.layers.Pipeline`s.

| preset      | crop   | flip | jitter b/c/s/h (p)    | grayscale | blur 1 / 2 | solarize 1 / 2 |
|-------------|--------|------|-----------------------|-----------|------------|----------------|
| `cifar`     | 0.08-1 | 0.5  | 0.4/0.4/0.2/0.1 (0.8) | 0.2       | 0 / 0      | 0 / 0.2        |
| `imagenet`  | 0.08-1 | 0.5  | 0.4/0.4/0.2/0.1 (0.8) | 0.2       | 1.0 / 0.1  | 0 / 0.2        |
| `grayscale` | 0.08-1 | 0.5  | 0.4/0.4/0/0 (0.8)     | -         | 0 / 0      | 0 / 0.2        |

Crop: the area range of the random resized crop; jitter: the colour jitter
strengths (brightness/contrast/saturation/hue), applied with probability p;
blur and solarize: the probabilities of view 1 / view 2.

`imagenet` is the BYOL / Barlow Twins recipe (Grill et al. 2020, table 6;
Zbontar et al. 2021); `cifar` is its CIFAR form without blur, as used for
CIFAR by solo-learn's Barlow Twins / VICReg configurations; `grayscale` drops
what needs colour (saturation, hue, grayscale conversion) for
Fashion-MNIST-like data. The PID model's target view is `"clean"` (the image
resized to the training size) or `"weak"` (that, randomly flipped).
"""

import keras

from keras_pid_ssl.augment.color_jitter import ColorJitter
from keras_pid_ssl.augment.gaussian_blur import GaussianBlur
from keras_pid_ssl.augment.random_apply import RandomApply
from keras_pid_ssl.augment.random_flip import RandomFlip
from keras_pid_ssl.augment.random_grayscale import RandomGrayscale
from keras_pid_ssl.augment.random_resized_crop import RandomResizedCrop
from keras_pid_ssl.augment.solarize import Solarize
from keras_pid_ssl.augment.views import Views
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_image_size

_JITTER_RGB = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
_JITTER_GRAY = dict(brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0)


def _recipe(image_size, jitter, grayscale_p, blur_p):
    """One preset's settings; all share the jitter probability and the solarization.

    Per-view probabilities are pairs `(view 1, view 2)`.
    """
    return dict(
        image_size=image_size,
        jitter=jitter,
        jitter_p=0.8,
        grayscale_p=grayscale_p,
        blur_p=blur_p,
        solarize_p=(0.0, 0.2),
    )


RECIPES = {
    "cifar": _recipe(32, _JITTER_RGB, grayscale_p=0.2, blur_p=(0.0, 0.0)),
    "imagenet": _recipe(224, _JITTER_RGB, grayscale_p=0.2, blur_p=(1.0, 0.1)),
    "grayscale": _recipe(28, _JITTER_GRAY, grayscale_p=0.0, blur_p=(0.0, 0.0)),
}
PRESETS = tuple(RECIPES)
TARGET_VIEWS = ("clean", "weak")


def _check_preset(name):
    if name not in RECIPES:
        raise ValueError(
            f"Unknown augmentation preset {name!r}. Available presets: {', '.join(PRESETS)}."
        )


def _output_size(name, image_size):
    """`image_size` checked, or preset `name`'s own size when it is None."""
    return check_image_size(
        "image_size", RECIPES[name]["image_size"] if image_size is None else image_size
    )


def _seeder(seed):
    """Distinct seeds for every random layer (None: each layer draws its own)."""
    count = [0]

    def next_seed():
        count[0] += 1
        return None if seed is None else int(seed) * 1000 + count[0]

    return next_seed


def view_pipeline(name, view=1, image_size=None, crop_scale=(0.08, 1.0), seed=None):
    """One view's pipeline of a preset (see the module table).

    Args:
        name: `"cifar"`, `"imagenet"` or `"grayscale"`.
        view: 1 or 2 (the views differ in blur and solarization probability).
        image_size: output size (int or `(height, width)`); default: the
            preset's (32, 224, 28).
        crop_scale: area range of the random resized crop.
        seed: integer seed; `None` draws fresh seeds.

    Returns:
        A `keras.layers.Pipeline` mapping float images in `[0, 1]` to a view.

    Example:

    >>> pipeline = view_pipeline("cifar", view=2)
    >>> tuple(pipeline(np.random.rand(4, 32, 32, 3).astype("float32")).shape)
    (4, 32, 32, 3)
    """
    _check_preset(name)
    check_choice("view", view, (1, 2))
    recipe = RECIPES[name]
    size = _output_size(name, image_size)
    next_seed = _seeder(None if seed is None else int(seed) * 10 + view)
    layers = [
        RandomResizedCrop(size, scale=crop_scale, seed=next_seed()),
        RandomFlip("horizontal", seed=next_seed()),
        RandomApply(
            ColorJitter(**recipe["jitter"], seed=next_seed()), recipe["jitter_p"], seed=next_seed()
        ),
    ]
    if recipe["grayscale_p"] > 0:
        layers.append(RandomGrayscale(recipe["grayscale_p"], seed=next_seed()))
    blur_p = recipe["blur_p"][view - 1]
    if blur_p > 0:
        layers.append(
            RandomApply(GaussianBlur(sigma=(0.1, 2.0), seed=next_seed()), blur_p, seed=next_seed())
        )
    solarize_p = recipe["solarize_p"][view - 1]
    if solarize_p > 0:
        layers.append(RandomApply(Solarize(0.5), solarize_p, seed=next_seed()))
    return keras.layers.Pipeline(layers, name=f"{name}_view{view}")


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class TargetResizing(keras.layers.Resizing):
    """`keras.layers.Resizing` (bilinear, antialiased) that compiles everywhere.

    Antialiasing only changes a downscale, and TensorFlow's antialiased
    resize has no XLA kernel, so an image already at the size is returned as
    it is and an upscale is a plain bilinear resize (the same values): the
    clean target of CIFAR or Fashion-MNIST then runs in a `jit_compile`d
    TensorFlow train step. A downscale is antialiased as before.
    """

    def transform_images(self, images, transformation=None, training=True):
        height, width = tuple(self.backend.shape(images))[-3:-1]
        if isinstance(height, int) and isinstance(width, int):
            if (height, width) == (self.height, self.width):
                return self.backend.cast(images, self.compute_dtype)
            if height <= self.height and width <= self.width:
                return self.backend.cast(
                    self.backend.image.resize(
                        images,
                        (self.height, self.width),
                        interpolation=self.interpolation,
                        antialias=False,
                        data_format=self.data_format,
                    ),
                    self.compute_dtype,
                )
        return super().transform_images(images, transformation, training=training)


def target_pipeline(kind="clean", image_size=32, seed=None):
    """The PID model's target view: `"clean"` (resized) or `"weak"` (resized, flipped).

    Args:
        kind: `"clean"` or `"weak"`.
        image_size: output size (int or `(height, width)`).
        seed: integer seed of the flip.

    Returns:
        A `keras.layers.Pipeline`.

    Example:

    >>> target = target_pipeline("clean", image_size=32)
    >>> tuple(target(np.random.rand(4, 28, 28, 1).astype("float32")).shape)
    (4, 32, 32, 1)
    """
    check_choice("kind", kind, TARGET_VIEWS)
    height, width = check_image_size("image_size", image_size)
    layers = [TargetResizing(height, width, interpolation="bilinear", antialias=True)]
    if kind == "weak":
        layers.append(RandomFlip("horizontal", seed=seed))
    return keras.layers.Pipeline(layers, name=f"{kind}_target")


def preset(name, image_size=None, target="clean", crop_scale=(0.08, 1.0), seed=None):
    """The two views of a preset and the PID target view, as a `Views` layer.

    Args:
        name: `"cifar"`, `"imagenet"` or `"grayscale"` (see the module table).
        image_size: output size (int or `(height, width)`); default: the
            preset's (32, 224, 28).
        target: the target view, `"clean"` or `"weak"`, or `None` for two views.
        crop_scale: area range of the random resized crop.
        seed: integer seed; `None` draws fresh seeds.

    Returns:
        A `Views` layer mapping float images in `[0, 1]` to
        `(view1, view2, target)` (or `(view1, view2)`).

    Example:

    >>> views = preset("cifar")
    >>> [tuple(v.shape) for v in views(np.random.rand(4, 32, 32, 3).astype("float32"))]
    [(4, 32, 32, 3), (4, 32, 32, 3), (4, 32, 32, 3)]
    """
    _check_preset(name)
    check_choice("target", target, (None,) + TARGET_VIEWS)
    size = _output_size(name, image_size)
    views = [
        view_pipeline(name, i, image_size=size, crop_scale=crop_scale, seed=seed) for i in (1, 2)
    ]
    target_layer = None
    if target is not None:
        target_seed = None if seed is None else int(seed) * 10 + 3
        target_layer = target_pipeline(target, image_size=size, seed=target_seed)
    return Views(*views, target=target_layer, name=f"{name}_views")


def resolve_views(augment, image_size=None, target=None, seed=None):
    """The `Views` that `augment` names: a preset, a `Views` or one layer.

    What `kps.SSLModel(..., augment=...)` and `kps.data.ssl_dataset(...,
    augment=...)` accept.

    Args:
        augment: a preset name (`"cifar"`, `"imagenet"`, `"grayscale"`), a
            `Views` (used as it is, given a target view if it has none and
            one is asked for), or a Keras layer (applied to each view, which
            draw independent parameters).
        image_size: output size of the views (int or `(height, width)`);
            default: the preset's.
        target: the target view to add, `"clean"` or `"weak"`, or `None`.
        seed: integer seed of a preset or of an added target view.

    Returns:
        A `Views`.

    Example:

    >>> views = resolve_views("grayscale", image_size=28, target="clean")
    >>> views.num_views, views.view1.name
    (3, 'grayscale_view1')
    """
    check_choice("target", target, (None,) + TARGET_VIEWS)
    if isinstance(augment, str):
        if augment not in RECIPES:
            raise ValueError(
                f"Unknown augmentation preset {augment!r}. Available presets: "
                f"{', '.join(PRESETS)}; or pass a kps.augment.Views or a Keras layer."
            )
        return preset(augment, image_size=image_size, target=target, seed=seed)
    if not isinstance(augment, keras.layers.Layer):
        raise ValueError(
            "`augment` must be a preset name, a kps.augment.Views or a Keras layer "
            f"(applied independently to each view). Received: augment={augment!r}"
        )
    view1, view2 = (augment.view1, augment.view2) if isinstance(augment, Views) else (augment,) * 2
    target_layer = augment.target if isinstance(augment, Views) else None
    if target is not None and target_layer is None:
        if image_size is None:
            raise ValueError(
                "A target view needs its `image_size`; pass it, or pass a "
                "kps.augment.Views whose `target` is set (e.g. "
                'kps.augment.preset("cifar", target="clean")).'
            )
        target_layer = target_pipeline(target, image_size=image_size, seed=seed)
    if isinstance(augment, Views) and target_layer is augment.target:
        return augment
    return Views(view1, view2, target=target_layer)
