"""STL-10 built by tensorflow-datasets, offline, from an archive in the real binary format.

`stl10_binary.tar.gz` holds `stl10_binary/{train,test}_{X,y}.bin`,
`unlabeled_X.bin` and `class_names.txt`; images are uint8 in column-major
order (`(n, 3, 96, 96)` with the width axis before the height axis), labels
1-10. As for CIFAR, only tfds's checksum registry is told about the test file.
"""

import io
import tarfile
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import checksums

import keras_pid_ssl as kps
from keras_pid_ssl.data import tfds_datasets

NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def _stl_bytes(images):
    """(n, height, width, 3) -> STL-10's column-major (n, 3, width, height) bytes."""
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()


@pytest.fixture(scope="module")
def stl_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    manual_dir = data_dir / "downloads" / "manual"
    manual_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    expected, members = {}, {}
    for split, n in (("train", 3), ("test", 2), ("unlabeled", 4)):
        # Distinct rows and columns so a transposition would show.
        images = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        members[f"stl10_binary/{split}_X.bin"] = _stl_bytes(images)
        labels = np.full(n, -1)
        if split != "unlabeled":
            labels = rng.integers(0, 10, n)
            members[f"stl10_binary/{split}_y.bin"] = (labels + 1).astype(np.uint8).tobytes()
        expected[split] = (images, labels)
    members["stl10_binary/class_names.txt"] = ("\n".join(NAMES) + "\n").encode()
    archive = manual_dir / "stl10_binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return data_dir, archive, expected


@pytest.fixture
def registered(stl_dir, monkeypatch):
    data_dir, archive, expected = stl_dir
    info = checksums.compute_url_info(archive)
    url_info = checksums.UrlInfo(size=info.size, checksum=info.checksum, filename=archive.name)
    monkeypatch.setattr(
        tfds.builder_cls("stl10"), "url_infos", {tfds_datasets.DATASETS["stl10"]["url"]: url_info}
    )
    return data_dir, expected


def _sorted(images, labels):
    order = np.lexsort(images.reshape(len(images), -1).T[::-1])
    return images[order], labels[order]


@pytest.mark.parametrize("split", ["train", "test", "unlabeled"])
def test_every_split_reads_back_exactly(registered, split):
    data_dir, expected = registered
    images, labels = kps.data.load("stl10", split, data_dir=data_dir)
    assert images.shape[1:] == (96, 96, 3) and images.dtype == np.uint8
    (gi, gl), (ei, el) = _sorted(images, labels), _sorted(*expected[split])
    np.testing.assert_array_equal(gi, ei)
    np.testing.assert_array_equal(gl, el)


def test_train_plus_unlabeled_for_pretraining(registered):
    data_dir, _ = registered
    images, labels = kps.data.load("stl10", "train+unlabeled", data_dir=data_dir)
    assert len(images) == 7 and np.sum(labels == -1) == 4


def test_unlabeled_streams_as_a_dataset(registered):
    data_dir, expected = registered
    dataset = kps.data.load("stl10", "unlabeled", data_dir=data_dir, as_dataset=True, image_size=32)
    images = np.stack([image.numpy() for image, _ in dataset])
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert kps.data.class_names("stl10", data_dir=data_dir)[2] == "car"


def test_a_missing_archive_fails_in_seconds(tmp_path):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=r"stl10_binary\.tar\.gz .*2\.5 GiB"):
        kps.data.load("stl10", "unlabeled", data_dir=tmp_path)
    assert time.monotonic() - start < 10


def test_labeled_dataset_refuses_unlabeled_images(registered):
    data_dir, _ = registered
    images, labels = kps.data.load("stl10", "unlabeled", data_dir=data_dir)
    with pytest.raises(ValueError, match="unlabeled"):
        kps.data.labeled_dataset(images, labels)
