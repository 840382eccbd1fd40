"""Stable labels of image folders: one class map, from the training split, for every split."""

import json

import numpy as np
import pytest
from PIL import Image

import keras_pid_ssl as kps
from keras_pid_ssl.data import image_folder


def _folder(root, splits, n=2):
    """`root/<split>/<class>/<i>.png`; image `i` of class `c` is filled with `10 * i + ord(c)`."""
    for split, classes in splits.items():
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                value = (10 * i + ord(name[0])) % 256
                Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(
                    root / split / name / f"{i}.png"
                )
    return root


def _expected_labels(names, classes, n=2):
    """NumPy reference: each image of `classes` (sorted folders) gets its index in `names`."""
    return np.repeat([list(names).index(c) for c in sorted(classes)], n)


def test_a_test_split_lacking_a_class_keeps_the_training_labels(tmp_path):
    folder = _folder(tmp_path, {"train": "abc", "test": "ac"})
    _, labels = kps.data.load("image_folder", "test", data_dir=folder)
    np.testing.assert_array_equal(labels, _expected_labels("abc", "ac"))  # c is 2, not 1
    np.testing.assert_array_equal(labels, [0, 0, 2, 2])
    assert kps.data.class_names("image_folder", data_dir=folder, split="test") == ("a", "b", "c")
    _, train_labels = kps.data.load("image_folder", "train", data_dir=folder)
    np.testing.assert_array_equal(train_labels, [0, 0, 1, 1, 2, 2])


def test_a_split_without_a_train_sibling_uses_its_own_classes(tmp_path):
    folder = _folder(tmp_path, {"val": "bc"})
    _, labels = kps.data.load("image_folder", "val", data_dir=folder)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])


def test_an_unknown_class_in_a_test_split_names_the_class_and_folder(tmp_path):
    folder = _folder(tmp_path, {"train": "ab", "test": "abd"})
    with pytest.raises(ValueError, match=r"class 'd' \(folder .*test/d\).*training split"):
        kps.data.load("image_folder", "test", data_dir=folder)
    with pytest.raises(ValueError, match=r"class 'd'"):
        kps.data.class_names("image_folder", data_dir=folder, split="test")


def test_class_names_set_the_labels_as_a_list_or_a_saved_file(tmp_path):
    folder = _folder(tmp_path, {"train": "abc", "test": "ac"})
    names = ["c", "z", "a", "b"]
    _, labels = kps.data.load("image_folder", "train", data_dir=folder, class_names=names)
    np.testing.assert_array_equal(labels, _expected_labels(names, "abc"))
    path = image_folder.write_class_names(tmp_path / "class_names.json", names)
    with open(path) as f:
        assert json.load(f) == names
    assert image_folder.read_class_names(path) == tuple(names)
    _, labels = kps.data.load("image_folder", "test", data_dir=folder, class_names=path)
    np.testing.assert_array_equal(labels, _expected_labels(names, "ac"))


def test_a_class_missing_from_a_saved_map_names_the_file_to_delete(tmp_path):
    folder = _folder(tmp_path / "data", {"train": "abc"})
    path = image_folder.write_class_names(tmp_path / "class_names.json", ["a", "b"])
    with pytest.raises(ValueError, match=r"class 'c' .*class_names\.json.*delete .*class_names"):
        kps.data.load("image_folder", "train", data_dir=folder, class_names=path)


@pytest.mark.parametrize(
    "content, match",
    [
        ('["a", ', "is not valid JSON"),
        ('["a", "a"]', "distinct class names"),
        ("[]", "non-empty list"),
        ('{"a": 0}', "list of distinct"),
        ('["a", 3]', "Received: \\['a', 3\\]"),
    ],
)
def test_a_bad_class_map_file_is_named(tmp_path, content, match):
    path = tmp_path / "class_names.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as error:
        image_folder.read_class_names(path)
    assert str(path) in str(error.value)


def test_bad_class_names_arguments_are_named(tmp_path):
    folder = _folder(tmp_path, {"train": "ab"})
    with pytest.raises(ValueError, match=r"`class_names` must be a non-empty list"):
        kps.data.load("image_folder", "train", data_dir=folder, class_names=["a", "a"])
    with pytest.raises(ValueError, match=r"`class_names` sets the labels of an image folder"):
        kps.data.load("fashion_mnist", "train", class_names=["a"])
