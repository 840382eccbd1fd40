"""A folder of images: class sub-folders (labelled) or a flat folder (unlabeled)."""

import json
import os

import numpy as np

from keras_pid_ssl.utils.validation import check_image_size

# The class map saved with a run: class names indexed by label, a JSON list.
CLASS_NAMES_FILE = "class_names.json"

# PIL modes holding 8-bit samples, converted to grey ("L") or "RGB".
_GREY_MODES = ("1", "L", "LA", "La")
_COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


def _entries(folder):
    """Non-hidden entries of `folder`, sorted. Hidden files (".DS_Store",
    "._x.png", ".ipynb_checkpoints") are operating-system or tool metadata and
    are the only entries skipped."""
    return sorted(e for e in os.listdir(folder) if not e.startswith("."))


def _decode(path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()  # decodes every byte: truncated files fail here
            mode = image.mode
            if mode in _GREY_MODES:
                return np.asarray(image.convert("L")), 1
            if mode in _COLOUR_MODES:
                return np.asarray(image.convert("RGB")), 3
    except Exception as error:  # PIL raises many types for broken files
        raise ValueError(
            f"Cannot decode image {path}: {type(error).__name__}: {error}. Remove or "
            "replace the file (every non-hidden file in the folder must be an image)."
        ) from error
    raise ValueError(
        f"Image {path} has PIL mode {mode!r} (e.g. 16-bit or float samples); only "
        "8-bit grey or colour images are supported: convert it to 8-bit PNG or JPEG."
    )


def _resize(array, image_size):
    from PIL import Image

    height, width = image_size
    image = Image.fromarray(array)  # 2-D uint8: "L"; (h, w, 3) uint8: "RGB"
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def _class_dirs(root):
    """The sorted class sub-folders of `root` (`[]` for a flat folder)."""
    return [e for e in _entries(root) if os.path.isdir(os.path.join(root, e))]


def _scan(root, names=None, names_from=None):
    """Returns `(files, labels, class_names)` of a folder, or raises naming the
    offending folder: a mix of files and sub-folders, an empty folder, an
    empty class folder, a class folder with sub-folders, or a class folder
    missing from the class map `names` (labels are indices into `names`;
    `names_from` says where the map comes from)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Image folder {root} does not exist or is not a folder.")
    entries = _entries(root)
    dirs = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    files = [e for e in entries if not os.path.isdir(os.path.join(root, e))]
    if not entries:
        raise ValueError(
            f"Image folder {root} is empty: put images in it (unlabeled) or one "
            "sub-folder of images per class."
        )
    if dirs and files:
        raise ValueError(
            f"Image folder {root} mixes files (e.g. {files[0]!r}) and sub-folders "
            f"(e.g. {dirs[0]!r}). Use either one sub-folder of images per class, or "
            "images only (unlabeled)."
        )
    if files:
        return [os.path.join(root, f) for f in files], [-1] * len(files), ()
    names = tuple(dirs) if names is None else tuple(names)
    index = {name: label for label, name in enumerate(names)}
    unknown = [name for name in dirs if name not in index]
    if unknown:
        saved = names_from is not None and os.path.isfile(names_from)
        rebuild = f" (delete {names_from} to rebuild it)" if saved else ""
        raise ValueError(
            f"Image folder {root} has class {unknown[0]!r} (folder "
            f"{os.path.join(root, unknown[0])}), which is not in the class map of "
            f"{names_from}: {list(names)}. A label must mean the same class in every "
            "split, so a split may only hold classes of the map: remove or rename that "
            f"folder, or add the class to the training split and build a new map{rebuild}."
        )
    paths, labels = [], []
    for name in dirs:
        class_dir = os.path.join(root, name)
        class_entries = _entries(class_dir)
        nested = [e for e in class_entries if os.path.isdir(os.path.join(class_dir, e))]
        if nested:
            raise ValueError(
                f"Class folder {class_dir} holds a sub-folder {nested[0]!r}; class "
                "folders must hold images only."
            )
        if not class_entries:
            raise ValueError(
                f"Class folder {class_dir} holds no images: remove it or add images "
                "(an empty class would shift every label after it)."
            )
        paths += [os.path.join(class_dir, e) for e in class_entries]
        labels += [index[name]] * len(class_entries)
    return paths, labels, names


def _check_names(names, source):
    """Checks a class map: a non-empty list of distinct, non-empty strings."""
    if (
        isinstance(names, (str, bytes))
        or not isinstance(names, (list, tuple))
        or not names
        or not all(isinstance(name, str) and name for name in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError(
            f"{source} must be a non-empty list of distinct class names (folder "
            "names), indexed by label, e.g. ['cat', 'dog'], or the path of a "
            f"{CLASS_NAMES_FILE} file. Received: {names!r}"
        )
    return tuple(names)


def read_class_names(path):
    """The class map saved by `write_class_names`: a tuple of names, indexed by label.

    Raises a `ValueError` naming `path` if the file is not a JSON list of
    distinct class names.
    """
    path = os.fspath(path)
    try:
        with open(path) as f:
            names = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"Class map {path} is not valid JSON ({error}). It should hold a list of class "
            "names indexed by label, as written by a previous run: restore it, or delete "
            "it to build the map again from the training split."
        ) from error
    return _check_names(names, f"Class map {path}")


def write_class_names(path, names):
    """Saves a class map (class names indexed by label) as a JSON list, atomically."""
    path = os.fspath(path)
    names = _check_names(names, "`class_names`")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(list(names), f, indent=1)
    os.replace(temporary, path)
    return path


def resolve_class_names(folder, split=None, class_names=None):
    """The class map of a split and where it comes from: `(names, source)`.

    `class_names` (a list of names or the path of a `class_names.json`)
    wins. Otherwise a split other than `"train"` takes the map of its
    sibling `folder/train` when that exists, so a test split lacking a class
    keeps the training labels; else the split's own sorted sub-folders
    (`names=None`, `()` for a flat folder).
    """
    folder = os.fspath(folder)
    if isinstance(class_names, (str, os.PathLike)):
        return read_class_names(class_names), f"{os.fspath(class_names)}"
    if class_names is not None:
        return _check_names(class_names, "`class_names`"), "`class_names`"
    train = os.path.join(folder, "train")
    if split is not None and split != "train" and os.path.isdir(train):
        return tuple(_class_dirs(train)), f"the training split {train}"
    return None, None


def has_split_folders(folder):
    """Whether a labelled folder holds its own splits, `train/` and `test/`.

    `folder/train/<class>/*` with `folder/test/<class>/*` is a split folder
    (`True`); `folder/<class>/*` is a single split (`False`), from which an
    evaluation carves its test split. A folder with only one of `train/` and
    `test/` is refused, naming the missing one.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Image folder {folder} does not exist or is not a folder.")
    present = [s for s in ("train", "test") if os.path.isdir(os.path.join(folder, s))]
    if len(present) == 1:
        missing = "test" if present == ["train"] else "train"
        raise ValueError(
            f"Image folder {folder} has a {present[0]!r} sub-folder but no {missing!r}: use "
            f"{folder}/train/<class>/* and {folder}/test/<class>/*, or one sub-folder of images "
            f"per class directly in {folder} (a test split is then carved from it)."
        )
    return bool(present)


def class_names(folder, split=None):
    """The class names of an image folder's split, indexed by label; `()` if flat.

    A split other than `"train"` shares the labels of `folder/train` when
    that exists (see `load_image_folder`).
    """
    names, source = resolve_class_names(folder, split)
    root = folder if split is None else os.path.join(folder, split)
    return _scan(root, names, source)[2]


def load_image_folder(
    folder,
    split=None,
    image_size=None,
    channels=None,
    resize_method="resize",
    class_names=None,
):
    """Loads every image of a folder as uint8 `(n, height, width, channels)`.

    Layouts: `folder/<class>/<image>` gives labels `0..num_classes-1` in sorted
    class-name order; `folder/<image>` gives labels `-1` (unlabeled). Nothing
    is skipped except hidden files: an undecodable file, an empty class folder,
    a mixed or nested layout, or (without `image_size`) images of different
    sizes raise an error that names the file or folder.

    Labels are stable across splits: the class map (class names indexed by
    label) is `class_names` when given, else, for a split other than
    `"train"`, that of the sibling `folder/train` when it exists. A split
    lacking some classes of the map keeps the map's labels; a class folder
    missing from the map is an error naming it.

    Args:
        folder: the folder.
        split: optional sub-folder (e.g. `"train"`) to read instead.
        image_size: `(height, width)` or an int: resize every image to it
            (bilinear); `None` requires all images to have one size.
        channels: 1 or 3; `None`: 1 if every image is grey, else 3.
        resize_method: `"resize"` (each image resized to `image_size`) or
            `"pad"` (images must share a size, then zero-padded).
        class_names: the class map: a list of class names indexed by label,
            or the path of a `class_names.json` (see `write_class_names`).

    Returns:
        `(images, labels)`: uint8 and int64 NumPy arrays.
    """
    from keras_pid_ssl.data.images import convert_channels
    from keras_pid_ssl.data.images import pad_images

    names, names_from = resolve_class_names(folder, split, class_names)
    root = os.fspath(folder) if split is None else os.path.join(os.fspath(folder), split)
    paths, labels, _ = _scan(root, names, names_from)
    target = None if image_size is None else check_image_size("image_size", image_size)
    fix = (
        "Pass resize_method='resize' to resize every image to image_size."
        if resize_method == "pad"
        else "Pass image_size=(height, width) to resize every image to one size."
    )
    arrays, grey = [], True
    for path in paths:
        array, image_channels = _decode(path)
        grey = grey and image_channels == 1
        if target is not None and resize_method == "resize":
            array = _resize(array, target)
        elif arrays and array.shape[:2] != arrays[0].shape[:2]:
            raise ValueError(
                f"Image {path} is {array.shape[1]}x{array.shape[0]} (width x height) "
                f"but {paths[0]} is {arrays[0].shape[1]}x{arrays[0].shape[0]}. {fix}"
            )
        arrays.append(array)
    out_channels = channels if channels is not None else (1 if grey else 3)
    # Grey images join colour ones as 3 equal channels before stacking.
    arrays = [a[..., None] if a.ndim == 2 else a for a in arrays]
    if any(a.shape[-1] != out_channels for a in arrays):
        arrays = [convert_channels(a[None], out_channels)[0] for a in arrays]
    images = np.stack(arrays)
    if target is not None and resize_method == "pad":
        images = pad_images(images, target)
    return images, np.asarray(labels, dtype=np.int64)
