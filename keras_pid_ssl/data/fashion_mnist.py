"""Fashion-MNIST from its idx `.gz` files (Xiao et al. 2017)."""

import gzip
import os
import zlib

import numpy as np

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# idx magic numbers: two zero bytes, 0x08 (unsigned byte), number of dimensions.
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801
_URL = "https://github.com/zalandoresearch/fashion-mnist/tree/master/data/fashion"


def keras_cache_dir():
    """Where `keras.datasets.fashion_mnist.load_data()` stores the files."""
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(keras_home, "datasets", "fashion-mnist")


def default_dirs():
    return [DEBIAN_DIR, keras_cache_dir()]


def read_idx(path, expected_magic, expected_rank):
    """Reads one gzip-compressed idx file (the MNIST format) into a uint8 array.

    Hand-written rather than `keras.datasets.fashion_mnist`'s reader because
    that one skips the header unchecked: a truncated or mismatched file there
    gives a wrong array or a bare NumPy error instead of naming the file.
    """
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"Cannot read {path}: not a valid .gz file ({error}).") from error
    header_len = 4 + 4 * expected_rank
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != expected_magic:
        found = "no header" if magic is None else f"magic number {magic:#010x}"
        raise ValueError(
            f"{path} is not an idx file of rank {expected_rank} ({found}, expected "
            f"magic number {expected_magic:#010x}): is it the right file?"
        )
    if len(data) < header_len:
        raise ValueError(f"{path} is too short for an idx file ({len(data)} bytes).")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_rank))
    size = int(np.prod(shape))
    if len(data) - header_len != size:
        raise ValueError(
            f"{path} is truncated or corrupt: its header announces shape {shape} "
            f"({size} bytes) but it holds {len(data) - header_len} bytes of data."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def find_dir(data_dir, split):
    names = FILES[split]
    candidates = [data_dir] if data_dir is not None else default_dirs()
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, n)) for n in names):
            return folder
    where = f"in {data_dir}" if data_dir is not None else "in " + " or ".join(candidates)
    raise FileNotFoundError(
        f"Fashion-MNIST {split} files {names[0]} and {names[1]} not found {where}. "
        "Get them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, "
        f"installs to {DEBIAN_DIR}), with keras.datasets.fashion_mnist.load_data() "
        f"(downloads to {keras_cache_dir()}), or from {_URL}; then pass "
        "data_dir=<folder holding the .gz files>."
    )


def load_fashion_mnist(split, data_dir=None):
    """Loads a Fashion-MNIST split as uint8 `(n, 28, 28, 1)` images and int64 labels.

    Args:
        split: `"train"` (60,000 images) or `"test"` (10,000).
        data_dir: the folder holding the four idx `.gz` files; default: Debian's
            `/usr/share/datasets/fashion-mnist`, then Keras's cache
            `~/.keras/datasets/fashion-mnist`.

    Returns:
        `(images, labels)`.
    """
    if split not in FILES:
        raise ValueError(f"Fashion-MNIST splits are {sorted(FILES)}. Received: split={split!r}")
    folder = find_dir(data_dir, split)
    images_path, labels_path = (os.path.join(folder, n) for n in FILES[split])
    images = read_idx(images_path, _IMAGES_MAGIC, 3)
    labels = read_idx(labels_path, _LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels."
        )
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise ValueError(f"{labels_path} holds label {labels.max()}; Fashion-MNIST labels are 0-9.")
    return images[..., None].copy(), labels.astype(np.int64)
