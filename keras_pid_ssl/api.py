"""`kps.pretrain`: one call, any backbone, any images."""

import os

import keras
import numpy as np

from keras_pid_ssl import training
from keras_pid_ssl.config import DATASETS
from keras_pid_ssl.data.load import read_npz_images


def pretrain(
    data,
    backbone=None,
    method=None,
    output_dir="runs/pretrain",
    config=None,
    extra_callbacks=(),
    **options,
):
    """Pretrains `backbone` on `data` with `method`; returns the run's summary dict.

    The run writes its records, plots, TensorBoard logs and the trained
    backbone (`backbone.keras`, and the SavedModel `backbone/` when
    TensorFlow is installed) into `output_dir`, and resumes there after an
    interruption (see `kps.training.pretrain`).

    Args:
        data: a dataset name (`"cifar10"`, `"cifar100"`, `"stl10"`,
            `"fashion_mnist"`: read from the user's files, see
            `kps.data.load`), a folder of images (`folder/<image>` or
            `folder/<class>/<image>`; the classes are ignored), an `.npz` file
            (its `x_train` or `images` array; labels are ignored), a uint8 NumPy
            array `(num_images, height, width, channels)`, or a
            `tf.data.Dataset` of such images (read into memory once).
        backbone: `None` (that of `config`, else `"resnet18"`), a built-in
            name (`"resnet18"`, `"small_convnet"`, ...), a
            `keras.applications` name (`"MobileNetV3Small"`, random weights
            unless `backbone_weights=<local file>`), `"keras_hub:<local
            preset folder>"`, or any `keras.Model` mapping float images in
            `[0, 1]` to a feature vector.
        method: `"pid"`, `"barlow_twins"` or `"vicreg"` (`None`: that of
            `config`, else `"pid"`).
        output_dir: the run's folder.
        config: a `kps.PretrainConfig` to start from (`options` override it).
        extra_callbacks: more Keras callbacks for `fit`.
        **options: fields of `kps.PretrainConfig` (`epochs`, `batch_size`,
            `image_size`, ...) or arguments of the method's loss (`w_syn`,
            `invariance_weight`, ...). Every `None` default scales with
            `epochs`, so any `epochs >= 1` runs.

    Example:

    ```python
    encoder = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=None, pooling="avg")
    summary = kps.pretrain("my_images/", backbone=encoder, epochs=10,
                           image_size=32, output_dir="runs/mine")
    ```
    """
    if "dataset" in options:
        raise TypeError(
            "kps.pretrain takes the data as its first argument (a name, a folder, an "
            f"array or a tf.data.Dataset), not `dataset`. Received: dataset={options['dataset']!r}"
        )
    images, data_options = _resolve_data(data)
    options = {**options, **data_options}
    encoder = None
    if backbone is not None:
        encoder, options["backbone"] = _resolve_backbone(backbone)
    if method is not None:
        options["method"] = method
    return training.pretrain(
        output_dir,
        config,
        images=images,
        encoder=encoder,
        extra_callbacks=extra_callbacks,
        **options,
    )


def _resolve_data(data):
    """`(images or None, config options)` of `pretrain`'s `data`."""
    if isinstance(data, (str, os.PathLike)):
        if data in DATASETS and data not in ("image_folder", "array"):
            return None, {"dataset": data}
        if os.path.isdir(data):
            return None, {"dataset": "image_folder", "data_dir": os.fspath(data)}
        if os.path.isfile(data) and os.fspath(data).endswith(".npz"):
            return read_npz_images(os.fspath(data)), {"dataset": "array"}
        raise FileNotFoundError(
            f"`data`={os.fspath(data)!r} is neither a dataset name "
            f"({', '.join(d for d in DATASETS if d not in ('image_folder', 'array'))}), an "
            "existing folder of images nor an .npz file."
        )
    if isinstance(data, np.ndarray):
        return data, {"dataset": "array"}
    if _is_tf_dataset(data):
        return _dataset_images(data), {"dataset": "array"}
    raise TypeError(
        "`data` must be a dataset name, a folder of images, a uint8 NumPy array of images or "
        f"a tf.data.Dataset of images. Received: {type(data).__name__}"
    )


def _is_tf_dataset(data):
    return any(
        cls.__module__.startswith("tensorflow") and cls.__name__ == "DatasetV2"
        for cls in type(data).__mro__
    )


def _dataset_images(dataset):
    """A `tf.data.Dataset` of images (batched or not; or `(image, ...)`/`{"image"}`
    elements) as one uint8 array."""
    arrays = []
    for element in dataset.as_numpy_iterator():
        if isinstance(element, dict):
            element = element.get("image", element.get("images"))
        elif isinstance(element, tuple):
            element = element[0]
        element = np.asarray(element)
        if element.ndim not in (3, 4):
            raise ValueError(
                "A tf.data.Dataset for kps.pretrain must yield images (height, width, "
                "channels), batches of them, `(image, label)` pairs or {'image': ...} dicts. "
                f"Received an element of shape {element.shape}."
            )
        arrays.append(element[None] if element.ndim == 3 else element)
    if not arrays:
        raise ValueError("The tf.data.Dataset given as `data` is empty.")
    return np.concatenate(arrays)


def _resolve_backbone(backbone):
    if isinstance(backbone, keras.Model):
        return backbone, "custom"
    if isinstance(backbone, str) and backbone != "custom":
        return None, backbone
    raise TypeError(
        "`backbone` must be a backbone name (e.g. 'resnet18', 'MobileNetV3Small', "
        f"'keras_hub:<folder>') or a keras.Model. Received: {backbone!r}"
    )
