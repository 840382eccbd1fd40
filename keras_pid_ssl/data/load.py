"""`load`: one entry point for every dataset, from files on the user's disk.

`load_labelled` gives the train and test splits of labelled data for
evaluation: a dataset name, a labelled image folder or a NumPy `.npz` file.
"""

import dataclasses
import math
import os

import numpy as np

from keras_pid_ssl.data import fashion_mnist as fashion_mnist_lib
from keras_pid_ssl.data import image_folder as image_folder_lib
from keras_pid_ssl.data import tfds_datasets
from keras_pid_ssl.data.images import check_uint8_images
from keras_pid_ssl.data.images import prepare_images
from keras_pid_ssl.utils.determinism import map_parallel_calls
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_image_size
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import check_labels
from keras_pid_ssl.utils.validation import check_open_unit_interval

DATASETS = ("cifar10", "cifar100", "stl10", "fashion_mnist", "image_folder")
# The share of single-split labelled data (a folder of class sub-folders, an
# .npz of images and labels) that `load_labelled` holds out as its test split.
TEST_FRACTION = 0.2
# The keys of a labelled .npz: keras.datasets' four arrays, or one split.
NPZ_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_SINGLE_KEYS = ("images", "labels")


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

    return dataset.map(prepare, num_parallel_calls=map_parallel_calls())


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


@dataclasses.dataclass
class LabelledData:
    """The train and test splits of labelled data (`load_labelled`).

    Attributes:
        x_train, y_train, x_test, y_test: uint8 images and int64 labels.
        source: `"dataset"` (a name of `load`), `"image_folder"` or `"npz"`.
        location: the dataset name, or the path of the folder or file.
        class_names: the class map of an image folder (names indexed by
            label); `None` for fixed labels.
        num_classes: the number of classes: that of the class map, else
            the largest label of either split plus one.
        test_split: where the test images come from: `{"source": "given"}`
            (the data's own test split) or `{"source": "carved",
            "test_fraction": ..., "seed": ..., "stratified": True}`, each
            with a `"description"` for people.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    location: str
    class_names: tuple | None
    num_classes: int
    test_split: dict


def labelled_source(data, data_dir=None):
    """What labelled `data` is: `(source, location)`.

    `data` is a dataset name of `load` (`"image_folder"` with `data_dir`, the
    folder), or the path of a labelled image folder or of an `.npz` file.
    `source` is `"dataset"`, `"image_folder"` or `"npz"`; `location` the name
    or path. Anything else is refused, saying what `data` may be.
    """
    if isinstance(data, str) and data in DATASETS:
        if data != "image_folder":
            return "dataset", data
        if data_dir is None:
            raise ValueError("`image_folder` needs data_dir=<the folder of images>.")
        return "image_folder", os.fspath(data_dir)
    if not isinstance(data, (str, os.PathLike)):
        raise ValueError(
            "`data` must be a dataset name, a labelled image folder or an .npz file. "
            f"Received: data={data!r} of type {type(data).__name__}"
        )
    path = os.fspath(data)
    if data_dir is not None:
        raise ValueError(
            f"`data_dir` is the folder of a named dataset; data={path!r} is a path itself. "
            f"Leave data_dir unset. Received: data_dir={data_dir!r}"
        )
    if os.path.isdir(path):
        return "image_folder", path
    if os.path.isfile(path) and path.endswith(".npz"):
        return "npz", path
    found = "a file that is not an .npz" if os.path.exists(path) else "no such file or folder"
    raise ValueError(
        f"`data` must be a dataset name ({', '.join(d for d in DATASETS if d != 'image_folder')}), "
        "a labelled image folder (<folder>/<class>/<images>, or <folder>/train/<class>/... "
        f"and <folder>/test/<class>/...) or an .npz file ({', '.join(NPZ_SPLIT_KEYS)}, or "
        f"{' and '.join(NPZ_SINGLE_KEYS)}). Received: data={path!r} ({found})."
    )


def stratified_split(labels, test_fraction=TEST_FRACTION, seed=0):
    """Seeded, class-stratified train and test indices of `labels`.

    Each class of `n >= 2` images gives `round(test_fraction * n)` of them
    (half up, at least 1 and at most `n - 1`) to the test split, drawn with
    `seed`; a class of one image stays in training.

    Returns:
        `(train_indices, test_indices)`, each sorted.

    >>> train, test = stratified_split(np.array([0] * 10 + [1] * 5), 0.2, seed=0)
    >>> len(train), len(test), int((np.array([0] * 10 + [1] * 5)[test] == 1).sum())
    (12, 3, 1)
    """
    check_open_unit_interval("test_fraction", test_fraction)
    check_int("seed", seed, 0)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        count = min(max(math.floor(test_fraction * len(members) + 0.5), 1), len(members) - 1)
        test.append(rng.choice(members, size=count, replace=False))
    test = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def open_npz(path, how_to_save):
    """The `.npz` archive at `path`, opened without pickle; a `ValueError` that
    names the problem (and `how_to_save` one) for anything else."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read {path} as an .npz file: {error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path} holds a single array, not an .npz archive of named arrays: save one with "
            f"{how_to_save}."
        )
    return archive


def _npz_arrays(archive, path, keys):
    """`{key: array}` of an open archive; object arrays (pickle) are refused by name."""
    try:
        return {key: archive[key] for key in keys}
    except ValueError as error:  # object arrays need pickle, which is refused
        raise ValueError(
            f"{path} holds an array that needs pickle ({error}); save numeric arrays."
        ) from error


def read_npz_images(path):
    """The training images of an `.npz` file, for pretraining: its `x_train`
    (keras.datasets' layout) or `images` array, with a channel axis added where
    missing; labels and test splits are not used."""
    with open_npz(path, "np.savez(path, images=...)") as archive:
        key = next((k for k in ("x_train", "images") if k in archive.files), None)
        if key is None:
            raise ValueError(
                f"{path} holds the arrays {sorted(archive.files)}; pretraining reads its "
                "images from an array named 'x_train' or 'images'."
            )
        images = _npz_arrays(archive, path, [key])[key]
    return images[..., None] if images.ndim == 3 else images


def read_npz(path):
    """The labelled splits of an `.npz` file: `{"train": (x, y), "test": (x, y)}`, or
    `{"all": (x, y)}` for a file of `images` and `labels`.

    Images are uint8 `(n, height, width[, channels])` (a missing channel axis
    is added, as for keras.datasets' MNIST), labels integers `(n,)` or
    `(n, 1)` (CIFAR's layout, flattened). Anything else is refused, naming
    the keys found.
    """
    path = os.fspath(path)
    archive = open_npz(
        path,
        f"np.savez(path, {'=..., '.join(NPZ_SPLIT_KEYS)}=...) or "
        f"np.savez(path, {'=..., '.join(NPZ_SINGLE_KEYS)}=...)",
    )
    with archive:
        keys = sorted(archive.files)
        layouts = {"split": NPZ_SPLIT_KEYS, "single": NPZ_SINGLE_KEYS}
        layout = next((k for k, v in layouts.items() if sorted(v) == keys), None)
        if layout is None:
            raise ValueError(
                f"{path} holds the arrays {keys}; a labelled .npz holds exactly "
                f"{list(NPZ_SPLIT_KEYS)} (the keras.datasets convention) or "
                f"{list(NPZ_SINGLE_KEYS)} (a test split is then carved from them). Rename "
                "the arrays, or drop the others."
            )
        arrays = _npz_arrays(archive, path, keys)
    pairs = (
        {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
        if layout == "split"
        else {"all": ("images", "labels")}
    )
    return {
        split: _npz_pair(path, x_key, arrays[x_key], y_key, arrays[y_key])
        for split, (x_key, y_key) in pairs.items()
    }


def _npz_pair(path, x_key, images, y_key, labels):
    if images.ndim == 3:
        images = images[..., None]
    check_uint8_images(images, f"{path}[{x_key!r}]")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{path}[{y_key!r}] must hold one label per image of {x_key!r}, shape "
            f"({len(images)},). Received: shape={labels.shape}"
        )
    check_labels(f"{path}[{y_key!r}]", labels)
    if labels.size and labels.min() < 0:
        raise ValueError(
            f"{path}[{y_key!r}] must hold class labels >= 0. Received a label {labels.min()}: "
            "drop unlabelled images (-1) before evaluation."
        )
    return images, labels.astype(np.int64)


def load_labelled(
    data,
    data_dir=None,
    image_size=None,
    channels=None,
    resize_method=None,
    class_names=None,
    test_fraction=TEST_FRACTION,
    seed=0,
):
    """Train and test splits of labelled data, for evaluation.

    | `data`                                               | test split             |
    |------------------------------------------------------|------------------------|
    | a dataset name of `load` (and `data_dir`)            | its test split         |
    | `<folder>` of `train/<class>/*` and `test/<class>/*` | `test/`                |
    | `<folder>` of `<class>/*`                            | carved                 |
    | `.npz` of `x_train, y_train, x_test, y_test`         | `x_test, y_test`       |
    | `.npz` of `images, labels`                           | carved                 |

    (`"image_folder"` with `data_dir=<folder>` is the same as `<folder>`.)

    A carved test split holds `test_fraction` of every class
    (`stratified_split` with `seed`); `LabelledData.test_split` says which
    case applied. Images come at `image_size` and `channels` (as in `load`;
    `resize_method` defaults to `"resize"`, `"pad"` for Fashion-MNIST).
    `class_names` labels an image folder (as in `load`).

    Returns:
        A `LabelledData`.
    """
    source, location = labelled_source(data, data_dir)
    if class_names is not None and source != "image_folder":
        raise ValueError(
            f"`class_names` sets the labels of an image folder; {location!r} has fixed "
            f"labels. Received: class_names={class_names!r}. Leave it unset."
        )
    check_open_unit_interval("test_fraction", test_fraction)
    check_int("seed", seed, 0)
    options = dict(image_size=image_size, channels=channels, resize_method=resize_method)
    names = None
    if source == "dataset":
        splits = {s: load(data, s, data_dir=data_dir, **options) for s in ("train", "test")}
    elif source == "image_folder":
        names, splits = _load_labelled_folder(location, class_names, options)
    else:
        check_choice("resize_method", resize_method, (None, "pad", "resize"))
        splits = {
            split: (prepare_images(x, image_size, channels, resize_method or "resize"), y)
            for split, (x, y) in read_npz(location).items()
        }
    largest = max(int(y.max()) for _, y in splits.values())
    num_classes = len(names) if names else largest + 1
    if "all" not in splits:
        test_split = {"source": "given", "description": f"the test split of {location}"}
        return LabelledData(
            *splits["train"], *splits["test"], source, location, names, num_classes, test_split
        )
    images, labels = splits["all"]
    train, test = stratified_split(labels, test_fraction, seed)
    if not len(test):
        raise ValueError(
            f"{location} has no class with two or more images: a test split cannot be carved "
            "from it. Add images, or give a test split."
        )
    percent = f"{100 * test_fraction:g}%"
    test_split = {
        "source": "carved",
        "test_fraction": test_fraction,
        "seed": seed,
        "stratified": True,
        "description": (
            f"carved from {location} (no test split given): a seeded (seed {seed}), "
            f"class-stratified {percent} of its {len(labels)} images, {len(test)} test and "
            f"{len(train)} training images"
        ),
    }
    return LabelledData(
        images[train],
        labels[train],
        images[test],
        labels[test],
        source,
        location,
        names,
        num_classes,
        test_split,
    )


def _load_labelled_folder(folder, class_names, options):
    """An image folder's class map and splits: `{"train", "test"}` or `{"all"}`."""
    if image_folder_lib.has_split_folders(folder):
        names, _ = image_folder_lib.resolve_class_names(folder, "test", class_names)
        splits = {
            s: load("image_folder", s, data_dir=folder, class_names=class_names, **options)
            for s in ("train", "test")
        }
        return names, splits
    names, _ = image_folder_lib.resolve_class_names(folder, None, class_names)
    if names is None and not image_folder_lib.class_names(folder):
        raise ValueError(
            f"Image folder {folder} is flat (unlabeled): evaluation needs labels, one "
            "sub-folder of images per class (a test split is then carved from it), or "
            "train/<class>/* and test/<class>/*."
        )
    images, labels = load("image_folder", None, data_dir=folder, class_names=class_names, **options)
    names = names if names is not None else image_folder_lib.class_names(folder)
    return names, {"all": (images, labels)}
