"""A folder of images: class sub-folders (labelled) or a flat folder (unlabeled)."""

import os

import numpy as np

from keras_pid_ssl.utils.validation import check_image_size

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


def _scan(root):
    """Returns `(files, labels, class_names)` of a folder, or raises naming the
    offending folder: a mix of files and sub-folders, an empty folder, an
    empty class folder, or a class folder with sub-folders."""
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
    paths, labels = [], []
    for label, name in enumerate(dirs):
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
        labels += [label] * len(class_entries)
    return paths, labels, tuple(dirs)


def class_names(folder, split=None):
    """The class names (sorted sub-folder names) of an image folder; `()` if flat."""
    root = folder if split is None else os.path.join(folder, split)
    return _scan(root)[2]


def load_image_folder(folder, split=None, image_size=None, channels=None, resize_method="resize"):
    """Loads every image of a folder as uint8 `(n, height, width, channels)`.

    Layouts: `folder/<class>/<image>` gives labels `0..num_classes-1` in sorted
    class-name order; `folder/<image>` gives labels `-1` (unlabeled). Nothing
    is skipped except hidden files: an undecodable file, an empty class folder,
    a mixed or nested layout, or (without `image_size`) images of different
    sizes raise an error that names the file or folder.

    Args:
        folder: the folder.
        split: optional sub-folder (e.g. `"train"`) to read instead.
        image_size: `(height, width)` or an int: resize every image to it
            (bilinear); `None` requires all images to have one size.
        channels: 1 or 3; `None`: 1 if every image is grey, else 3.
        resize_method: `"resize"` (each image resized to `image_size`) or
            `"pad"` (images must share a size, then zero-padded).

    Returns:
        `(images, labels)`: uint8 and int64 NumPy arrays.
    """
    from keras_pid_ssl.data.images import convert_channels
    from keras_pid_ssl.data.images import pad_images

    root = os.fspath(folder) if split is None else os.path.join(os.fspath(folder), split)
    paths, labels, _ = _scan(root)
    target = None if image_size is None else check_image_size("image_size", image_size)
    arrays, grey = [], True
    for path in paths:
        array, image_channels = _decode(path)
        grey = grey and image_channels == 1
        if target is not None and resize_method == "resize":
            array = _resize(array, target)
        elif arrays and array.shape[:2] != arrays[0].shape[:2]:
            raise ValueError(
                f"Image {path} is {array.shape[1]}x{array.shape[0]} (width x height) "
                f"but {paths[0]} is {arrays[0].shape[1]}x{arrays[0].shape[0]}. Pass "
                "image_size=(height, width) to resize every image to one size."
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
