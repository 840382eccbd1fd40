"""Pad, resize and channel conversion of uint8 image arrays."""

import inspect
import os

import numpy as np
import pytest

import keras_pid_ssl as kps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _images(shape=(3, 28, 28, 1), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_pad_centres_the_images_in_zeros():
    images = _images()
    padded = kps.data.pad_images(images, 32)
    assert padded.shape == (3, 32, 32, 1) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], images)
    assert padded.sum() == images.astype(np.int64).sum()


def test_odd_padding_puts_the_extra_row_at_the_bottom_right():
    padded = kps.data.pad_images(np.full((1, 2, 2, 1), 9, np.uint8), (5, 4))
    np.testing.assert_array_equal(
        np.argwhere(padded[0, ..., 0] == 9), [[1, 1], [1, 2], [2, 1], [2, 2]]
    )


def test_pad_to_a_smaller_size_is_refused_with_options_that_exist():
    with pytest.raises(ValueError, match="28x28 images to the smaller image_size 16x16") as error:
        kps.data.pad_images(_images(), 16)
    message = str(error.value)
    assert "at least 28x28" in message
    # Every option the message offers is a real argument of the entry point it names.
    assert "prepare_images(..., method='resize')" in message
    assert kps.data.prepare_images(_images(), 16, method="resize").shape == (3, 16, 16, 1)
    for function in (kps.data.load, kps.evaluation.linear_eval, kps.evaluation.finetune):
        assert "resize_method" in inspect.signature(function).parameters
    for recipe in ("linear_eval.py", "finetune.py"):
        assert f"recipes/{recipe}" in message
        with open(os.path.join(ROOT, "recipes", recipe)) as f:
            assert "eval_flags.define_data_flags()" in f.read()
    # Both recipes define their data flags there, --resize_method among them.
    with open(os.path.join(ROOT, "recipes", "eval_flags.py")) as f:
        assert '"resize_method"' in f.read()


def test_prepare_images_pad_refuses_to_shrink_and_resize_does():
    with pytest.raises(ValueError, match="method='resize'"):
        kps.data.prepare_images(_images(), (20, 30), method="pad")
    out = kps.data.prepare_images(np.full((1, 28, 28, 1), 50, np.uint8), 14, method="resize")
    assert out.shape == (1, 14, 14, 1) and np.all(out == 50)


def test_resize_keeps_a_constant_image_constant_and_uint8():
    images = np.full((2, 28, 28, 3), 77, np.uint8)
    for size in (14, 40):
        out = kps.data.resize_images(images, size)
        assert out.dtype == np.uint8 and out.shape == (2, size, size, 3)
        assert np.all(out == 77)


def test_repeating_a_grey_channel_and_taking_the_luma_back():
    images = _images()
    rgb = kps.data.convert_channels(images, 3)
    assert rgb.shape == (3, 28, 28, 3) and all(
        np.array_equal(rgb[..., c], images[..., 0]) for c in range(3)
    )
    np.testing.assert_array_equal(kps.data.convert_channels(rgb, 1), images)


def test_luma_weights():
    pixel = np.array([[[[200, 100, 50]]]], np.uint8)
    assert kps.data.convert_channels(pixel, 1)[0, 0, 0, 0] == round(
        0.299 * 200 + 0.587 * 100 + 0.114 * 50
    )


def test_prepare_images_pads_then_converts():
    out = kps.data.prepare_images(_images(), 32, channels=3)
    assert out.shape == (3, 32, 32, 3)


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((28, 28), np.uint8), "shape"),
        (np.zeros((2, 28, 28), np.uint8), r"images\[..., None\]"),
        (np.zeros((2, 8, 8, 1), np.float32), "uint8"),
        (np.zeros((2, 8, 8, 2), np.uint8), "1 \\(grey\\) or 3"),
        ([[1, 2]], "NumPy array"),
    ],
)
def test_bad_images_are_explained(images, match):
    with pytest.raises(ValueError, match=match):
        kps.data.prepare_images(images)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kps.data.pad_images(_images(), 32.5), r"`image_size` .* image_size=32\.5"),
        (lambda: kps.data.resize_images(_images(), (16, -1)), "`image_size`"),
        (lambda: kps.data.convert_channels(_images(), 2), r"`channels` must be one of \[1, 3\]"),
        (lambda: kps.data.prepare_images(_images(), method="crop"), "`method` must be one of"),
    ],
)
def test_bad_sizes_channels_and_methods_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
