"""load_labelled: labelled data from a dataset name, a labelled image folder or an .npz, with a
seeded, class-stratified test split carved from data that has none.

Every image carries its own index in its first pixel, so the images a split holds name the
indices it drew, which are checked against a NumPy reference of the documented rule (per class,
round half up of `test_fraction * n`, at least 1 and at most n - 1, drawn with
`default_rng(seed).choice` class by class).
"""

import math

import numpy as np
import pytest
from PIL import Image

from keras_pid_ssl.data.load import labelled_source
from keras_pid_ssl.data.load import load_labelled
from keras_pid_ssl.data.load import read_npz
from keras_pid_ssl.data.load import read_npz_images
from keras_pid_ssl.data.load import stratified_split


def reference_split(labels, fraction, seed):
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        count = min(max(math.floor(fraction * len(members) + 0.5), 1), len(members) - 1)
        test += rng.choice(members, size=count, replace=False).tolist()
    test = np.sort(test).astype(int)
    return np.setdiff1d(np.arange(len(labels)), test), test


def indexed_images(n, size=4):
    """uint8 images whose first pixel is their index (n <= 256)."""
    images = np.zeros((n, size, size, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    return images


def test_stratified_split_counts_per_class_round_half_up_with_bounds():
    labels = np.repeat([0, 1, 2, 3, 4], [10, 5, 2, 1, 4])
    train, test = stratified_split(labels, 0.25, seed=0)
    # 2.5 -> 3 (half up, not to even), 1.25 -> 1, 0.5 -> 1 (capped at n - 1 = 1), a single
    # image stays in training, 1.0 -> 1.
    assert [int((labels[test] == c).sum()) for c in range(5)] == [3, 1, 1, 0, 1]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    ref_train, ref_test = reference_split(labels, 0.25, 0)
    np.testing.assert_array_equal(test, ref_test)
    np.testing.assert_array_equal(train, ref_train)


def test_stratified_split_is_seeded():
    labels = np.repeat([0, 1], 20)
    first, again = stratified_split(labels, 0.2, 3), stratified_split(labels, 0.2, 3)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], stratified_split(labels, 0.2, 4)[1])
    np.testing.assert_array_equal(
        stratified_split(labels, 0.2, 4)[1], reference_split(labels, 0.2, 4)[1]
    )


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_stratified_split_refuses_fractions_outside_the_open_interval(fraction):
    with pytest.raises(ValueError, match=r"`test_fraction` must be in \(0, 1\)"):
        stratified_split(np.zeros(4), fraction)


def test_an_npz_of_images_and_labels_gets_a_carved_stratified_split(tmp_path):
    labels = np.repeat([0, 1, 2], [10, 20, 5])
    path = tmp_path / "data.npz"
    np.savez(path, images=indexed_images(len(labels)), labels=labels)
    data = load_labelled(str(path), seed=7)
    ref_train, ref_test = reference_split(labels, 0.2, 7)
    np.testing.assert_array_equal(data.x_test[:, 0, 0, 0], ref_test)
    np.testing.assert_array_equal(data.x_train[:, 0, 0, 0], ref_train)
    np.testing.assert_array_equal(data.y_test, labels[ref_test])
    np.testing.assert_array_equal(data.y_train, labels[ref_train])
    assert (len(data.x_train), len(data.x_test)) == (28, 7)
    assert data.num_classes == 3 and data.source == "npz" and data.class_names is None
    split = data.test_split
    assert (split["source"], split["test_fraction"], split["seed"]) == ("carved", 0.2, 7)
    assert "carved from" in split["description"] and "seed 7" in split["description"]
    assert "20%" in split["description"]


def test_an_npz_in_the_keras_datasets_layout_keeps_its_test_split(tmp_path):
    """keras.datasets' layout: grey images without a channel axis, CIFAR's (n, 1) labels."""
    rng = np.random.default_rng(0)
    x_train, x_test = (rng.integers(0, 256, (n, 4, 4)).astype(np.uint8) for n in (6, 3))
    y_train, y_test = np.array([[0], [1], [2], [0], [1], [2]]), np.array([[2], [2], [0]])
    path = tmp_path / "keras.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data = load_labelled(str(path), channels=3)
    np.testing.assert_array_equal(data.x_train, np.repeat(x_train[..., None], 3, axis=-1))
    np.testing.assert_array_equal(data.x_test, np.repeat(x_test[..., None], 3, axis=-1))
    np.testing.assert_array_equal(data.y_train, y_train[:, 0])
    np.testing.assert_array_equal(data.y_test, [2, 2, 0])
    assert data.y_train.dtype == np.int64 and data.num_classes == 3
    assert data.test_split["source"] == "given"


@pytest.mark.parametrize(
    "arrays, match",
    [
        (dict(x=np.zeros((2, 4, 4, 3), np.uint8), y=np.zeros(2)), r"holds the arrays \['x', 'y'\]"),
        (
            dict(images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros(2), x_val=np.zeros(1)),
            r"holds the arrays \['images', 'labels', 'x_val'\]",
        ),
        (
            dict(images=np.zeros((2, 4, 4, 3), np.float32), labels=np.zeros(2, int)),
            r"\['images'\]` must be uint8",
        ),
        (
            dict(images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.zeros(3, int)),
            r"\['labels'\] must hold one label per image of 'images', shape \(2,\)",
        ),
        (
            dict(images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, -1])),
            r"labels >= 0.*drop unlabelled",
        ),
        (
            dict(images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0.5, 1.0])),
            r"must hold integer class labels",
        ),
    ],
)
def test_a_bad_npz_is_refused_naming_what_it_holds(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        read_npz(str(path))


def test_an_npy_file_or_pickled_arrays_are_refused(tmp_path):
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(ValueError, match="holds a single array, not an .npz archive"):
        read_npz(str(tmp_path / "single.npz"))
    np.savez(tmp_path / "objects.npz", images=np.array([None, 1], dtype=object), labels=[0, 1])
    with pytest.raises(ValueError, match="needs pickle"):
        read_npz(str(tmp_path / "objects.npz"))
    # Pretraining's reader gives the same error.
    with pytest.raises(ValueError, match="objects.npz holds an array that needs pickle"):
        read_npz_images(str(tmp_path / "objects.npz"))


def _class_folder(root, counts):
    """`root/<class>/<i>.png` whose first pixel is a running index over the folder."""
    index = 0
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            image = np.zeros((4, 4, 3), np.uint8)
            image[0, 0, 0] = index
            Image.fromarray(image).save(root / name / f"{i:02d}.png")
            index += 1
    return root


def test_a_folder_of_class_folders_gets_a_carved_split_and_its_class_map(tmp_path):
    folder = _class_folder(tmp_path / "pets", {"cat": 10, "dog": 5})
    data = load_labelled(str(folder), seed=1)
    labels = np.repeat([0, 1], [10, 5])
    ref_train, ref_test = reference_split(labels, 0.2, 1)
    np.testing.assert_array_equal(data.x_test[:, 0, 0, 0], ref_test)
    np.testing.assert_array_equal(data.x_train[:, 0, 0, 0], ref_train)
    np.testing.assert_array_equal(data.y_test, labels[ref_test])
    assert data.class_names == ("cat", "dog") and data.num_classes == 2
    assert data.source == "image_folder" and data.test_split["source"] == "carved"


def test_a_folder_with_train_and_test_keeps_them(tmp_path):
    _class_folder(tmp_path / "d" / "train", {"a": 3, "b": 2})
    _class_folder(tmp_path / "d" / "test", {"a": 1, "b": 1})
    data = load_labelled(str(tmp_path / "d"))
    np.testing.assert_array_equal(data.y_train, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(data.y_test, [0, 1])
    assert data.test_split["source"] == "given"
    same = load_labelled("image_folder", data_dir=str(tmp_path / "d"))
    np.testing.assert_array_equal(same.x_test, data.x_test)


def test_bad_folders_and_sources_are_explained(tmp_path):
    _class_folder(tmp_path / "only_train" / "train", {"a": 2})
    with pytest.raises(ValueError, match=r"has a 'train' sub-folder but no 'test'"):
        load_labelled(str(tmp_path / "only_train"))
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "flat" / "0.png")
    with pytest.raises(ValueError, match=r"flat \(unlabeled\)"):
        load_labelled(str(tmp_path / "flat"))
    _class_folder(tmp_path / "singletons", {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="no class with two or more images"):
        load_labelled(str(tmp_path / "singletons"))
    with pytest.raises(ValueError, match=r"dataset name \(cifar10, .*no such file or folder"):
        load_labelled(str(tmp_path / "missing"))
    (tmp_path / "table.csv").write_text("1,2")
    with pytest.raises(ValueError, match="a file that is not an .npz"):
        load_labelled(str(tmp_path / "table.csv"))
    with pytest.raises(ValueError, match="`data_dir` is the folder of a named dataset"):
        labelled_source(str(tmp_path / "flat"), data_dir=str(tmp_path))
    assert labelled_source("cifar10") == ("dataset", "cifar10")
    with pytest.raises(ValueError, match="`class_names` sets the labels of an image folder"):
        np.savez(tmp_path / "d.npz", images=np.zeros((2, 4, 4, 3), np.uint8), labels=[0, 1])
        load_labelled(str(tmp_path / "d.npz"), class_names=["a", "b"])
