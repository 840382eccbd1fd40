"""CIFAR-10, CIFAR-100 and STL-10 through tensorflow-datasets, from the user's files.

tfds builds these datasets from the original archives. Offline, a plain
`tfds.load(name)` first tries to fetch a prepared copy from Google Cloud
Storage and then the archive from its URL, retrying for minutes before it
fails. Here the dataset is read if already prepared (`download=False`); if
not, it is built from the archive in the manual folder (default
`<data_dir>/downloads/manual/`, where tfds's download manager looks for
`cifar-10-binary.tar.gz` and checks its registered SHA-256), without any
network access; if that archive is missing, a `FileNotFoundError` says at
once which file to put where. Only `download=True` goes to the network.
"""

import os
import re

import numpy as np

DATASETS = {
    "cifar10": dict(
        archive="cifar-10-binary.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        size="163 MiB",
        splits=("train", "test"),
    ),
    "cifar100": dict(
        archive="cifar-100-binary.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        size="161 MiB",
        splits=("train", "test"),
    ),
    "stl10": dict(
        archive="stl10_binary.tar.gz",
        url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
        size="2.5 GiB",
        splits=("train", "test", "unlabeled"),
    ),
}


def _tfds_split(name, split):
    """Checks a split string (tfds syntax: "train", "train[:10%]", "train+unlabeled")
    and maps our spelling "unlabeled" to tfds's STL-10 "unlabelled"."""
    if not isinstance(split, str) or not split:
        raise ValueError(f"`split` must be a string such as 'train'. Received: split={split!r}")
    allowed = DATASETS[name]["splits"]
    parts = [re.split(r"\[", part, maxsplit=1)[0].strip() for part in split.split("+")]
    for part in parts:
        if part not in allowed and not (name == "stl10" and part == "unlabelled"):
            raise ValueError(
                f"{name} splits are {', '.join(allowed)} (tfds slicing such as "
                f"'train[:90%]' and '+' work). Received: split={split!r}"
            )
    return split.replace("unlabeled", "unlabelled") if name == "stl10" else split


def manual_dir_for(builder, data_dir, manual_dir):
    if manual_dir is not None:
        return os.path.expanduser(os.fspath(manual_dir))
    root = (
        os.fspath(builder.data_dir_root)
        if data_dir is None
        else os.path.expanduser(os.fspath(data_dir))
    )
    return os.path.join(root, "downloads", "manual")


def _missing_archive_error(name, builder, manual_dir):
    info = DATASETS[name]
    path = os.path.join(manual_dir, info["archive"])
    return FileNotFoundError(
        f"{name} is not prepared in {builder.data_dir_root} and its archive is missing: "
        f"put {info['archive']} ({info['size']}, from {info['url']}) at {path} "
        f"(or pass manual_dir=<its folder>) and call again, offline; or pass "
        f"download=True to let tensorflow-datasets download it."
    )


def _prepare(name, builder, data_dir, manual_dir, download):
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    if builder.is_prepared():
        return
    manual_dir = manual_dir_for(builder, data_dir, manual_dir)
    archive = os.path.join(manual_dir, DATASETS[name]["archive"])
    if os.path.isfile(archive):
        config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
        try:
            builder.download_and_prepare(download_config=config)
        except NonMatchingChecksumError as error:
            raise ValueError(
                f"{archive} is not the original {DATASETS[name]['archive']} (its size "
                f"or SHA-256 differs from the one tensorflow-datasets registers): "
                f"re-download it from {DATASETS[name]['url']}. Details: {error}"
            ) from error
        return
    if not download:
        raise _missing_archive_error(name, builder, manual_dir)
    builder.download_and_prepare()


def load_tfds(name, split, data_dir=None, manual_dir=None, download=False, as_dataset=False):
    """Loads a tfds image classification dataset as uint8 images and int64 labels.

    Args:
        name: `"cifar10"`, `"cifar100"` or `"stl10"`.
        split: a split of the dataset, in tfds syntax.
        data_dir: the tfds data folder (default: tfds's, `~/tensorflow_datasets`).
        manual_dir: the folder holding the archive (default
            `<data_dir>/downloads/manual`).
        download: allow tfds to download the archive when it is missing.
        as_dataset: return an unbatched `tf.data.Dataset` of `(image, label)`
            instead of NumPy arrays.

    Returns:
        `(images, labels)` NumPy arrays (labels -1 for STL-10's unlabeled
        images), or a `tf.data.Dataset`.
    """
    import tensorflow_datasets as tfds

    tfds_split = _tfds_split(name, split)
    builder = tfds.builder(name, data_dir=data_dir)
    _prepare(name, builder, data_dir, manual_dir, download)
    if as_dataset:
        import tensorflow as tf

        dataset = builder.as_dataset(split=tfds_split, as_supervised=True, shuffle_files=False)
        return dataset.map(lambda image, label: (image, tf.cast(label, "int64")))
    images, labels = tfds.as_numpy(
        builder.as_dataset(split=tfds_split, as_supervised=True, batch_size=-1, shuffle_files=False)
    )
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)


def class_names(name, data_dir=None):
    import tensorflow_datasets as tfds

    return tuple(tfds.builder(name, data_dir=data_dir).info.features["label"].names)
