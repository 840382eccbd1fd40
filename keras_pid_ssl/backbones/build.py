"""`build`: a backbone from a name, a `keras.applications` model or a keras-hub preset.

Every backbone maps float images in `[0, 1]` (what `kps.data` produces) to a
pooled feature vector `(batch_size, features)`.
"""

import os

import keras

from keras_pid_ssl.backbones.resnet import ResNet
from keras_pid_ssl.backbones.small_convnet import SmallConvNet

BUILTIN = ("resnet18", "resnet34", "resnet50", "small_convnet")
KERAS_HUB_PREFIX = "keras_hub:"


def build(name, input_shape, synchronized_bn=False, weights=None, **options):
    """The backbone `name` for images of `input_shape`.

    Args:
        name: a built-in name (`"resnet18"`, `"resnet34"`, `"resnet50"`
            (CIFAR stem below 64 px), `"small_convnet"`); the name of a
            `keras.applications` model (e.g. `"MobileNetV3Small"`, built with
            `include_top=False`, `pooling="avg"`); or `"keras_hub:<folder>"`,
            a keras-hub backbone preset saved in a local folder (needs
            `keras-hub`; nothing is downloaded).
        input_shape: `(height, width, channels)`.
        synchronized_bn: built-in backbones only: batch norms synchronised
            over `tf.distribute` replicas.
        weights: `keras.applications` / keras-hub only: a local weights file
            (`None`: random initialisation).
        **options: more arguments of the backbone's constructor (e.g.
            `widths=(16, 32)` for `"small_convnet"`, `alpha=0.5` for
            MobileNetV3).

    Example:

    >>> encoder = build("small_convnet", (16, 16, 3))
    >>> tuple(encoder(np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 128)
    """
    if name in BUILTIN:
        if weights is not None:
            raise ValueError(
                f"`backbone_weights` loads keras.applications or keras-hub weights; the built-in "
                f"{name!r} starts from random weights. Received: backbone_weights={weights!r}"
            )
        return _builtin(name, tuple(input_shape), synchronized_bn, options)
    if name.startswith(KERAS_HUB_PREFIX):
        if options:
            raise ValueError(
                "A keras-hub backbone takes its settings from its preset; `backbone_options` "
                f"do not apply. Received: {options!r}"
            )
        return _keras_hub(name[len(KERAS_HUB_PREFIX) :], tuple(input_shape), weights)
    application = getattr(keras.applications, name, None)
    if callable(application) and name[:1].isupper():
        return _application(name, application, tuple(input_shape), weights, options)
    raise ValueError(
        f"Unknown backbone {name!r}. Use one of {list(BUILTIN)}, a keras.applications model "
        "name (e.g. 'MobileNetV3Small', 'EfficientNetB0', 'ResNet50'), "
        f"'{KERAS_HUB_PREFIX}<local preset folder>', or pass a keras.Model."
    )


def _builtin(name, input_shape, synchronized_bn, options):
    if name == "small_convnet":
        return SmallConvNet(input_shape=input_shape, synchronized_bn=synchronized_bn, **options)
    options = {"variant": "cifar" if min(input_shape[:2]) < 64 else "imagenet", **options}
    return ResNet(
        depth=int(name[len("resnet") :]),
        input_shape=input_shape,
        synchronized_bn=synchronized_bn,
        **options,
    )


def _check_weights_file(weights):
    if weights is not None and not os.path.exists(weights):
        raise FileNotFoundError(
            f"`backbone_weights` {weights!r} does not exist. Pass a local weights file "
            "(nothing is downloaded), or None for random initialisation."
        )


def _application(name, application, input_shape, weights, options):
    """A `keras.applications` model on `[0, 1]` images, pooled to a vector.

    Models with built-in preprocessing (`include_preprocessing`, e.g.
    MobileNetV3, EfficientNet, ConvNeXt) expect `[0, 255]`: the images are
    scaled by 255 first. Others get `[0, 1]` as they are, which suits
    training from scratch; their pretrained weights expect their module's
    `preprocess_input`, so pass such a model yourself, preprocessing included.
    """
    _check_weights_file(weights)
    kwargs = dict(include_top=False, weights=None, input_shape=input_shape, pooling="avg")
    kwargs.update(options)
    try:
        model = application(include_preprocessing=True, **kwargs)
        scale = 255.0
    except TypeError:
        if weights is not None:
            raise ValueError(
                f"keras.applications.{name} expects its module's preprocess_input for "
                "pretrained weights: build it yourself, preprocessing included, and pass "
                "the keras.Model as `backbone`."
            ) from None
        model = application(**kwargs)
        scale = 1.0
    if weights is not None:
        model.load_weights(weights)
    inputs = keras.Input(input_shape)
    features = model(keras.layers.Rescaling(scale)(inputs) if scale != 1.0 else inputs)
    return keras.Model(inputs, features, name=f"{name.lower()}_backbone")


def _keras_hub(folder, input_shape, weights):
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            "A keras-hub backbone needs the keras-hub package: pip install keras-hub"
        ) from error
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"keras-hub preset folder {folder!r} does not exist. Pass a preset saved "
            "locally (`backbone.save_to_preset(folder)`); nothing is downloaded."
        )
    _check_weights_file(weights)
    backbone = keras_hub.models.Backbone.from_preset(folder)
    if weights is not None:
        backbone.load_weights(weights)
    inputs = keras.Input(input_shape)
    features = backbone(inputs)
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(inputs, features, name="keras_hub_backbone")
