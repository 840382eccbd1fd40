"""CIFAR-10/100 built by tensorflow-datasets, offline, from archives in the real binary format.

The tests write `cifar-10-binary.tar.gz` / `cifar-100-binary.tar.gz` with a
few records each (CIFAR-10 record: 1 label byte + 3072 pixel bytes, channel
planes of 32x32 row-major; CIFAR-100: coarse and fine label bytes first) and
run tfds's real build from the manual folder. tfds checks a manual archive
against the SHA-256 it registers for the official file; the only test double
is that registry, told the checksum of the test archive.
"""

import io
import os
import tarfile
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import checksums

import keras_pid_ssl as kps
from keras_pid_ssl.data import tfds_datasets

CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _records(rng, n, label_bytes):
    high = [10] if label_bytes == 1 else [20, 100]  # CIFAR-100: coarse, then fine
    labels = rng.integers(0, high, (n, label_bytes), dtype=np.uint8)
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    data = b"".join(l.tobytes() + p.tobytes() for l, p in zip(labels, planes, strict=True))
    return labels, planes.transpose(0, 2, 3, 1), data


def _write_archive(path, members):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _make_cifar10(manual_dir, rng):
    expected = {"train": [], "test": []}
    members = {}
    for i in range(1, 6):
        labels, images, data = _records(rng, 2, 1)
        members[f"cifar-10-batches-bin/data_batch_{i}.bin"] = data
        expected["train"].append((images, labels[:, 0]))
    labels, images, data = _records(rng, 3, 1)
    members["cifar-10-batches-bin/test_batch.bin"] = data
    expected["test"].append((images, labels[:, 0]))
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(CIFAR10_NAMES) + "\n\n").encode()
    _write_archive(os.path.join(manual_dir, "cifar-10-binary.tar.gz"), members)
    return {
        k: (np.concatenate([v[0] for v in vs]), np.concatenate([v[1] for v in vs]))
        for k, vs in expected.items()
    }


def _make_cifar100(manual_dir, rng):
    expected, members = {}, {}
    for split, n in (("train", 4), ("test", 2)):
        labels, images, data = _records(rng, n, 2)
        members[f"cifar-100-binary/{split}.bin"] = data
        expected[split] = (images, labels[:, 1])  # fine label, after the coarse one
    members["cifar-100-binary/coarse_label_names.txt"] = "\n".join(
        f"coarse{i}" for i in range(20)
    ).encode()
    members["cifar-100-binary/fine_label_names.txt"] = "\n".join(
        f"fine{i}" for i in range(100)
    ).encode()
    _write_archive(os.path.join(manual_dir, "cifar-100-binary.tar.gz"), members)
    return expected


def _register(monkeypatch, name, archive_path):
    """Tell tfds's checksum registry about the test archive."""
    url = tfds_datasets.DATASETS[name]["url"]
    info = checksums.compute_url_info(archive_path)
    url_info = checksums.UrlInfo(
        size=info.size, checksum=info.checksum, filename=os.path.basename(archive_path)
    )
    monkeypatch.setattr(tfds.builder_cls(name), "url_infos", {url: url_info})


def _sorted(images, labels):
    order = np.lexsort(images.reshape(len(images), -1).T[::-1])
    return images[order], labels[order]


def _assert_same_examples(got, expected):
    """tfds stores examples in a hashed order: compare as sets of (image, label)."""
    (gi, gl), (ei, el) = _sorted(*got), _sorted(*expected)
    np.testing.assert_array_equal(gi, ei)
    np.testing.assert_array_equal(gl, el)


@pytest.fixture(scope="module")
def cifar_dirs(tmp_path_factory):
    """Both archives in `<data_dir>/downloads/manual/`, built once for the module."""
    data_dir = tmp_path_factory.mktemp("tfds")
    manual_dir = data_dir / "downloads" / "manual"
    manual_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    expected = {
        "cifar10": _make_cifar10(manual_dir, rng),
        "cifar100": _make_cifar100(manual_dir, rng),
    }
    return data_dir, manual_dir, expected


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_builds_offline_from_the_manual_archive_and_reads_every_split(
    cifar_dirs, monkeypatch, name
):
    data_dir, manual_dir, expected = cifar_dirs
    _register(monkeypatch, name, manual_dir / tfds_datasets.DATASETS[name]["archive"])
    for split in ("train", "test"):
        images, labels = kps.data.load(name, split, data_dir=data_dir)
        assert (
            images.dtype == np.uint8
            and images.shape[1:] == (32, 32, 3)
            and labels.dtype == np.int64
        )
        _assert_same_examples((images, labels), expected[name][split])
    names = kps.data.class_names(name, data_dir=data_dir)
    assert names[:3] == (
        ("airplane", "automobile", "bird") if name == "cifar10" else ("fine0", "fine1", "fine2")
    )


def test_a_prepared_dataset_is_read_without_the_archive(cifar_dirs, monkeypatch, tmp_path):
    data_dir, manual_dir, expected = cifar_dirs
    _register(monkeypatch, "cifar10", manual_dir / "cifar-10-binary.tar.gz")
    kps.data.load("cifar10", "test", data_dir=data_dir)  # prepared (maybe by the test above)
    images, labels = kps.data.load(
        "cifar10", "test", data_dir=data_dir, manual_dir=tmp_path / "empty"
    )
    _assert_same_examples((images, labels), expected["cifar10"]["test"])


def test_split_slicing_as_dataset_and_resizing(cifar_dirs, monkeypatch):
    data_dir, manual_dir, _ = cifar_dirs
    _register(monkeypatch, "cifar10", manual_dir / "cifar-10-binary.tar.gz")
    images, _ = kps.data.load(
        "cifar10", "train[:50%]", data_dir=data_dir, image_size=16, channels=1
    )
    assert images.shape == (5, 16, 16, 1)
    dataset = kps.data.load("cifar10", "test", data_dir=data_dir, as_dataset=True, image_size=16)
    image, label = next(iter(dataset))
    assert (
        image.shape == (16, 16, 3) and image.dtype.name == "uint8" and label.dtype.name == "int64"
    )


def test_an_explicit_manual_dir_is_used(tmp_path, monkeypatch):
    manual_dir = tmp_path / "my_archives"
    manual_dir.mkdir()
    expected = _make_cifar10(manual_dir, np.random.default_rng(3))
    _register(monkeypatch, "cifar10", manual_dir / "cifar-10-binary.tar.gz")
    got = kps.data.load("cifar10", "test", data_dir=tmp_path / "tfds", manual_dir=manual_dir)
    _assert_same_examples(got, expected["test"])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_a_missing_archive_fails_in_seconds_saying_what_to_put_where(tmp_path, name):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as error:
        kps.data.load(name, "train", data_dir=tmp_path)
    assert time.monotonic() - start < 10
    message = str(error.value)
    archive = tfds_datasets.DATASETS[name]["archive"]
    assert os.path.join(str(tmp_path), "downloads", "manual", archive) in message
    assert tfds_datasets.DATASETS[name]["url"] in message and "download=True" in message


def test_an_archive_that_is_not_the_original_is_refused_by_checksum(tmp_path):
    manual_dir = tmp_path / "downloads" / "manual"
    manual_dir.mkdir(parents=True)
    _make_cifar10(manual_dir, np.random.default_rng(1))  # tfds's real registry: wrong SHA-256
    start = time.monotonic()
    with pytest.raises(ValueError, match="is not the original cifar-10-binary.tar.gz"):
        kps.data.load("cifar10", "train", data_dir=tmp_path)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("split", ["validation", "unlabeled", ""])
def test_unknown_splits_are_named(split, tmp_path):
    with pytest.raises(ValueError, match="split"):
        kps.data.load("cifar10", split, data_dir=tmp_path)
