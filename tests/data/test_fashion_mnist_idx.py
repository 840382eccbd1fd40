"""Fashion-MNIST from idx .gz files written by the tests in the real format."""

import gzip
import os
import struct
import time

import numpy as np
import pytest

import keras_pid_ssl as kps
from keras_pid_ssl.data import fashion_mnist


def _write_idx(path, array, magic_type=0x08):
    """The idx format: 0, 0, type byte, rank byte, big-endian int32 dims, data."""
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
        struct.pack(">i", d) for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _write_split(folder, split, images, labels):
    image_name, label_name = fashion_mnist.FILES[split]
    _write_idx(os.path.join(folder, image_name), images)
    _write_idx(os.path.join(folder, label_name), labels)


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 12), ("test", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write_split(tmp_path, split, images, labels)
        data[split] = (images, labels)
    return tmp_path, data


@pytest.mark.parametrize("split", ["train", "test"])
def test_reads_images_and_labels_exactly(idx_dir, split):
    folder, data = idx_dir
    images, labels = kps.data.load("fashion_mnist", split, data_dir=folder)
    assert images.dtype == np.uint8 and images.shape == (len(data[split][0]), 28, 28, 1)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images[..., 0], data[split][0])
    np.testing.assert_array_equal(labels, data[split][1])


def test_pads_to_32_and_repeats_channels_for_the_model(idx_dir):
    folder, data = idx_dir
    images, _ = kps.data.load("fashion_mnist", "test", data_dir=folder, image_size=32, channels=3)
    assert images.shape == (5, 32, 32, 3)
    for c in range(3):
        np.testing.assert_array_equal(images[:, 2:30, 2:30, c], data["test"][0])
    assert images[:, :2].max() == 0 and images[:, 30:].max() == 0


def test_resize_method_resizes(idx_dir):
    folder, _ = idx_dir
    images, _ = kps.data.load(
        "fashion_mnist", "test", data_dir=folder, image_size=14, resize_method="resize"
    )
    assert images.shape == (5, 14, 14, 1) and images.dtype == np.uint8


def test_as_dataset_yields_image_label_pairs(idx_dir):
    folder, data = idx_dir
    dataset = kps.data.load("fashion_mnist", "test", data_dir=folder, as_dataset=True)
    image, label = next(iter(dataset))
    np.testing.assert_array_equal(image.numpy()[..., 0], data["test"][0][0])
    assert int(label) == data["test"][1][0]


def test_falls_back_to_the_keras_cache(idx_dir, tmp_path_factory, monkeypatch):
    folder, data = idx_dir
    keras_home = tmp_path_factory.mktemp("keras_home")
    cache = keras_home / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for name in fashion_mnist.FILES["test"]:
        (cache / name).write_bytes((folder / name).read_bytes())
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path_factory.mktemp("no_debian")))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    images, labels = kps.data.load("fashion_mnist", "test")
    np.testing.assert_array_equal(labels, data["test"][1])


def test_missing_files_fail_at_once_naming_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "debian"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as error:
        kps.data.load("fashion_mnist", "train")
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "debian") in message
    assert str(tmp_path / "keras" / "datasets" / "fashion-mnist") in message
    assert "dataset-fashion-mnist" in message


def test_a_truncated_file_is_named(idx_dir):
    folder, data = idx_dir
    name = fashion_mnist.FILES["test"][0]
    _write_idx(folder / name, data["test"][0])
    raw = gzip.decompress((folder / name).read_bytes())
    with gzip.open(folder / name, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(ValueError, match=f"{name}.*truncated"):
        kps.data.load("fashion_mnist", "test", data_dir=folder)


def test_a_file_that_is_not_gzip_is_named(idx_dir):
    folder, _ = idx_dir
    name = fashion_mnist.FILES["test"][1]
    (folder / name).write_bytes(b"not a gzip file")
    with pytest.raises(ValueError, match=f"{name}.*not a valid .gz"):
        kps.data.load("fashion_mnist", "test", data_dir=folder)


def test_labels_and_images_swapped_are_detected(idx_dir):
    folder, data = idx_dir
    image_name, label_name = fashion_mnist.FILES["test"]
    _write_idx(folder / image_name, data["test"][1])  # a rank-1 file as images
    with pytest.raises(ValueError, match="magic number"):
        kps.data.load("fashion_mnist", "test", data_dir=folder)


def test_mismatched_counts_are_named(idx_dir):
    folder, data = idx_dir
    _write_idx(folder / fashion_mnist.FILES["test"][1], data["test"][1][:3])
    with pytest.raises(ValueError, match="5 images but .* 3 labels"):
        kps.data.load("fashion_mnist", "test", data_dir=folder)


def test_unknown_split_is_named(idx_dir):
    with pytest.raises(ValueError, match="Fashion-MNIST splits"):
        kps.data.load("fashion_mnist", "validation", data_dir=idx_dir[0])


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(fashion_mnist.DEBIAN_DIR, "t10k-labels-idx1-ubyte.gz")),
    reason="Debian's dataset-fashion-mnist files are not installed",
)
def test_the_installed_test_split_has_1000_images_per_class():
    images, labels = kps.data.load("fashion_mnist", "test")
    assert images.shape == (10_000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)
    assert kps.data.class_names("fashion_mnist")[9] == "Ankle boot"
