"""`load`: one entry point for every dataset, from files on the user's disk."""

from keras_pid_ssl.data import fashion_mnist as fashion_mnist_lib
from keras_pid_ssl.data import image_folder as image_folder_lib
from keras_pid_ssl.data import tfds_datasets
from keras_pid_ssl.data.images import prepare_images
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_image_size

DATASETS = ("cifar10", "cifar100", "stl10", "fashion_mnist", "image_folder")


def _check_args(name, resize_method, channels, class_names=None):
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Available: {', '.join(DATASETS)}.")
    check_choice("resize_method", resize_method, (None, "pad", "resize"))
    check_choice("channels", channels, (None, 1, 3))
    if class_names is not None and name != "image_folder":
        raise ValueError(
            f"`class_names` sets the labels of an image folder; {name!r} has fixed labels. "
            f"Received: class_names={class_names!r} with name={name!r}. Leave it unset."
        )


def _prepare_dataset(dataset, image_size, channels, method):
    """`prepare_images` for an unbatched `tf.data.Dataset` of `(image, label)`."""
    import tensorflow as tf

    def prepare(image, label):
        if image_size is not None:
            height, width = check_image_size("image_size", image_size)
            if method == "pad":
                image = tf.image.pad_to_bounding_box(
                    image,
                    (height - tf.shape(image)[0]) // 2,
                    (width - tf.shape(image)[1]) // 2,
                    height,
                    width,
                )
            else:
                image = tf.image.resize(image, (height, width), antialias=True)
                image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        if channels == 3 and image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        elif channels == 1 and image.shape[-1] == 3:
            image = tf.cast(
                tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8
            )
        return image, label

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def load(
    name,
    split="train",
    data_dir=None,
    manual_dir=None,
    download=False,
    as_dataset=False,
    image_size=None,
    channels=None,
    resize_method=None,
    class_names=None,
):
    """Loads a dataset split as uint8 images `(n, height, width, channels)` and int64 labels.

    | name            | source                                   | splits                         |
    |-----------------|------------------------------------------|--------------------------------|
    | `cifar10`       | tfds, from `cifar-10-binary.tar.gz`      | train, test                    |
    | `cifar100`      | tfds, from `cifar-100-binary.tar.gz`     | train, test (fine labels)      |
    | `stl10`         | tfds, from `stl10_binary.tar.gz`         | train, test, unlabeled         |
    | `fashion_mnist` | the four idx `.gz` files                 | train, test                    |
    | `image_folder`  | `data_dir/<class>/*` or `data_dir/*`     | `None` or a sub-folder name    |

    The tfds datasets are read if prepared in `data_dir`, else built offline
    from the archive in `manual_dir` (default `<data_dir>/downloads/manual/`);
    when the archive is missing a `FileNotFoundError` says at once which file
    to put where (`download=True` lets tfds download it instead). tfds split
    syntax works (`"train[:90%]"`, `"train+unlabeled"`). Unlabeled images
    (STL-10 `unlabeled`, a flat image folder) have label -1.

    NumPy arrays are the default: CIFAR's 50,000 images take 150 MB. STL-10's
    `unlabeled` split (100,000 96x96 images) takes 2.8 GB as an array; pass
    `as_dataset=True` to stream it from the tfds files instead.

    An image folder's labels are stable across splits: a split other than
    `"train"` takes the class map of `data_dir/train` when that exists (or
    `class_names` when given), so a test split lacking a class keeps the
    training labels, and a class unknown to the map is an error.

    Args:
        name: one of `cifar10`, `cifar100`, `stl10`, `fashion_mnist`, `image_folder`.
        split: the split (see the table; `None` for a whole image folder).
        data_dir: tfds data folder (default `~/tensorflow_datasets`); for
            `fashion_mnist`, the folder of the idx files (default
            `/usr/share/datasets/fashion-mnist`, then `~/.keras/datasets/fashion-mnist`);
            for `image_folder`, the folder (required).
        manual_dir: folder holding the tfds archive.
        download: let tensorflow-datasets download a missing archive.
        as_dataset: return an unbatched `tf.data.Dataset` of `(image, label)`.
        image_size: `(height, width)` or an int to bring images to.
        channels: 1 or 3 to convert to (grey repeated to RGB, or RGB to luma).
        resize_method: `"pad"` (zero padding) or `"resize"` (bilinear); default
            `"pad"` for `fashion_mnist` (28 -> 32 as CIFAR-style models expect)
            and `"resize"` otherwise.
        class_names: `image_folder` only: the class map, class names indexed
            by label (a list, or the path of a saved `class_names.json`).

    Returns:
        `(images, labels)` NumPy arrays, or a `tf.data.Dataset` with `as_dataset=True`.

    Example:

    ```python
    images, labels = kps.data.load("fashion_mnist", "train", image_size=32, channels=3)
    images, labels = kps.data.load("cifar10", "train")  # needs cifar-10-binary.tar.gz
    ```
    """
    _check_args(name, resize_method, channels, class_names)
    method = resize_method or ("pad" if name == "fashion_mnist" else "resize")
    if name == "image_folder":
        if data_dir is None:
            raise ValueError("`image_folder` needs data_dir=<the folder of images>.")
        images, labels = image_folder_lib.load_image_folder(
            data_dir,
            split,
            image_size=image_size,
            channels=channels,
            resize_method=method,
            class_names=class_names,
        )
    elif name == "fashion_mnist":
        images, labels = fashion_mnist_lib.load_fashion_mnist(split, data_dir)
        images = prepare_images(images, image_size, channels, method)
    else:
        result = tfds_datasets.load_tfds(
            name,
            split,
            data_dir=data_dir,
            manual_dir=manual_dir,
            download=download,
            as_dataset=as_dataset,
        )
        if as_dataset:
            return _prepare_dataset(result, image_size, channels, method)
        images, labels = result
        images = prepare_images(images, image_size, channels, method)
    if as_dataset:
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((images, labels))
    return images, labels


def class_names(name, data_dir=None, split=None):
    """The class names of a dataset, indexed by label.

    Args:
        name: a dataset name of `load`.
        data_dir: as for `load` (required for `image_folder`).
        split: for `image_folder`, the sub-folder.

    Returns:
        A tuple of strings (`()` for a flat image folder). An image folder's
        split other than `"train"` has the names of `data_dir/train` when
        that exists, as its labels do.

    Example:

    >>> class_names("fashion_mnist")[:3]
    ('T-shirt/top', 'Trouser', 'Pullover')
    """
    _check_args(name, None, None)
    if name == "fashion_mnist":
        return fashion_mnist_lib.CLASS_NAMES
    if name == "image_folder":
        if data_dir is None:
            raise ValueError("`image_folder` needs data_dir=<the folder of images>.")
        return image_folder_lib.class_names(data_dir, split)
    return tfds_datasets.class_names(name, data_dir)
