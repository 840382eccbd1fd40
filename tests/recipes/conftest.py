"""Shared fixtures of the recipe tests: a tiny Fashion-MNIST in the real idx format."""

import gzip
import os
import struct

import numpy as np
import pytest

import keras_pid_ssl as kps


def write_idx(path, array):
    """Writes `array` (uint8) in the idx format of (Fashion-)MNIST, gzipped."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype("uint8").tobytes())


@pytest.fixture(scope="module")
def tiny_fashion_mnist(tmp_path_factory):
    """Learnable tiny images: the class sets which quadrant is bright."""
    folder = tmp_path_factory.mktemp("fashion_mnist")
    rng = np.random.default_rng(0)
    for split, n, (images_name, labels_name) in [
        ("train", 96, kps.data.fashion_mnist.FILES["train"]),
        ("test", 48, kps.data.fashion_mnist.FILES["test"]),
    ]:
        labels = np.arange(n) % 4
        images = rng.integers(0, 60, size=(n, 12, 12)).astype("uint8")
        for i, label in enumerate(labels):
            r, c = divmod(int(label), 2)
            images[i, 6 * r : 6 * r + 6, 6 * c : 6 * c + 6] += 180
        write_idx(os.path.join(folder, images_name), images)
        write_idx(os.path.join(folder, labels_name), labels)
    return str(folder)
