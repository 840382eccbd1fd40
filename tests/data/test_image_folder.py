"""Image folders written as real PNG / JPEG files: layouts, labels and every error."""

import numpy as np
import pytest
from PIL import Image

import keras_pid_ssl as kps


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def _rgb(seed, size=(6, 5)):
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


def _grey(seed, size=(6, 5)):
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


@pytest.fixture
def class_folder(tmp_path):
    arrays = {
        "cat/b.png": _png(tmp_path / "cat" / "b.png", _rgb(1)),
        "cat/a.png": _png(tmp_path / "cat" / "a.png", _rgb(2)),
        "dog/x.png": _png(tmp_path / "dog" / "x.png", _rgb(3)),
    }
    return tmp_path, arrays


def _load(folder, **kwargs):
    return kps.data.load("image_folder", None, data_dir=folder, **kwargs)


def test_class_sub_folders_give_sorted_labels_and_exact_pixels(class_folder):
    folder, arrays = class_folder
    images, labels = _load(folder)
    assert images.shape == (3, 6, 5, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 0, 1])
    for image, key in zip(images, ["cat/a.png", "cat/b.png", "dog/x.png"], strict=True):
        np.testing.assert_array_equal(image, arrays[key])
    assert kps.data.class_names("image_folder", data_dir=folder) == ("cat", "dog")


def test_a_flat_folder_is_unlabeled(tmp_path):
    _png(tmp_path / "1.png", _rgb(1))
    _png(tmp_path / "2.png", _rgb(2))
    images, labels = _load(tmp_path)
    assert images.shape == (2, 6, 5, 3)
    np.testing.assert_array_equal(labels, [-1, -1])


def test_split_reads_a_sub_folder(tmp_path):
    _png(tmp_path / "train" / "a" / "1.png", _rgb(1))
    _png(tmp_path / "test" / "a" / "1.png", _rgb(2))
    images, labels = kps.data.load("image_folder", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(images[0], _rgb(2))


def test_grey_images_stay_grey_and_join_colour_ones_as_rgb(tmp_path):
    _png(tmp_path / "grey" / "1.png", _grey(1))
    images, _ = _load(tmp_path)
    assert images.shape == (1, 6, 5, 1)
    np.testing.assert_array_equal(images[0, ..., 0], _grey(1))
    _png(tmp_path / "rgb" / "1.png", _rgb(2))
    images, labels = _load(tmp_path)
    assert images.shape == (2, 6, 5, 3)
    np.testing.assert_array_equal(images[0], np.repeat(_grey(1)[..., None], 3, axis=-1))


def test_palette_and_rgba_files_decode_to_rgb(tmp_path):
    rgb = _rgb(4)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(
        tmp_path / "rgba.png"
    )
    images, _ = _load(tmp_path)
    np.testing.assert_array_equal(images[0], rgb)


def test_jpeg_files_are_read(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(tmp_path / "a.jpg", quality=95)
    images, _ = _load(tmp_path)
    assert images.shape == (1, 8, 8, 3) and abs(int(images.mean()) - 120) <= 2


def test_image_size_resizes_images_of_mixed_sizes(tmp_path):
    _png(tmp_path / "a" / "1.png", _rgb(1, (6, 5)))
    _png(tmp_path / "a" / "2.png", _rgb(2, (9, 12)))
    images, _ = _load(tmp_path, image_size=(4, 4))
    assert images.shape == (2, 4, 4, 3)


def test_hidden_files_are_the_only_entries_skipped(class_folder):
    folder, _ = class_folder
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    (folder / "cat" / "._a.png").write_bytes(b"metadata")
    images, labels = _load(folder)
    assert len(images) == 3


def test_a_corrupt_image_is_named(class_folder):
    folder, _ = class_folder
    data = (folder / "dog" / "x.png").read_bytes()
    (folder / "dog" / "x.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"dog/x\.png"):
        _load(folder)


def test_a_file_that_is_not_an_image_is_named(class_folder):
    folder, _ = class_folder
    (folder / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"cat/notes\.txt"):
        _load(folder)


def test_an_empty_class_folder_is_named(class_folder):
    folder, _ = class_folder
    (folder / "bird").mkdir()
    with pytest.raises(ValueError, match=r"bird holds no images"):
        _load(folder)


def test_files_next_to_class_folders_are_refused(class_folder):
    folder, _ = class_folder
    _png(folder / "stray.png", _rgb(9))
    with pytest.raises(ValueError, match="mixes files .*stray.png"):
        _load(folder)


def test_nested_folders_inside_a_class_are_refused(class_folder):
    folder, _ = class_folder
    _png(folder / "cat" / "kittens" / "k.png", _rgb(9))
    with pytest.raises(ValueError, match="cat holds a sub-folder 'kittens'"):
        _load(folder)


def test_mixed_sizes_without_image_size_name_the_file(class_folder):
    folder, _ = class_folder
    _png(folder / "dog" / "y.png", _rgb(5, (7, 7)))
    with pytest.raises(ValueError, match=r"dog/y\.png is 7x7 .* image_size"):
        _load(folder)


def test_sixteen_bit_images_are_refused_by_name(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint16) + 1000).save(tmp_path / "deep.png")
    with pytest.raises(ValueError, match=r"deep\.png has PIL mode"):
        _load(tmp_path)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is empty"):
        _load(tmp_path / "empty")
    with pytest.raises(ValueError, match="needs data_dir"):
        kps.data.load("image_folder")


def test_a_dangling_link_is_named_not_skipped(class_folder):
    folder, _ = class_folder
    (folder / "dog" / "gone.png").symlink_to(folder / "nowhere.png")
    with pytest.raises(ValueError, match=r"dog/gone\.png"):
        _load(folder)


def test_bad_load_arguments_are_named(class_folder):
    folder, _ = class_folder
    with pytest.raises(ValueError, match=r"`image_size` .* Received: image_size=\(8, 8\.5\)"):
        kps.data.load("image_folder", None, data_dir=str(folder), image_size=(8, 8.5))
    with pytest.raises(ValueError, match="`resize_method` must be one of"):
        kps.data.load("image_folder", data_dir=str(folder), resize_method="crop")
    with pytest.raises(ValueError, match=r"`channels` must be one of \[1, 3, None\]"):
        kps.data.load("image_folder", data_dir=str(folder), channels=4)


def test_padding_hints_name_resize_method_which_load_takes(class_folder):
    folder, _ = class_folder  # 6x5 images
    _png(folder / "dog" / "y.png", _rgb(5, (7, 7)))
    with pytest.raises(ValueError, match=r"dog/y\.png is 7x7 .* resize_method='resize'"):
        _load(folder, image_size=(8, 8), resize_method="pad")
    (folder / "dog" / "y.png").unlink()
    with pytest.raises(ValueError, match=r"6x5 images to the smaller .*resize_method='resize'"):
        _load(folder, image_size=(4, 4), resize_method="pad")
    images, _ = _load(folder, image_size=(4, 4), resize_method="resize")
    assert images.shape == (3, 4, 4, 3)
    padded, _ = _load(folder, image_size=(8, 7), resize_method="pad")
    np.testing.assert_array_equal(padded[2, 1:7, 1:6], _rgb(3))
    assert padded[2].astype(int).sum() == _rgb(3).astype(int).sum()
