"""Checks and shape changes of uint8 image arrays: pad, resize, channels."""

import numpy as np

from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_image_size


def check_uint8_images(images, name="images"):
    """Checks `images` is a uint8 NumPy array `(num_images, height, width, channels)`
    with 1 or 3 channels and returns it."""
    if not isinstance(images, np.ndarray):
        raise ValueError(
            f"`{name}` must be a NumPy array of uint8 images (num_images, height, "
            f"width, channels). Received: {type(images).__name__}"
        )
    if images.ndim != 4:
        hint = " (add a channel axis: images[..., None])" if images.ndim == 3 else ""
        raise ValueError(
            f"`{name}` must have shape (num_images, height, width, channels){hint}. "
            f"Received: shape={images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(
            f"`{name}` must be uint8 (values 0-255, as the loaders return). "
            f"Received: dtype={images.dtype}. Convert floats in [0, 1] with "
            "(images * 255).round().astype('uint8')."
        )
    if images.shape[-1] not in (1, 3):
        raise ValueError(
            f"`{name}` must have 1 (grey) or 3 (RGB) channels, last axis. "
            f"Received: shape={images.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"`{name}` is empty. Received: shape={images.shape}")
    return images


def check_pad_size(size, image_size):
    """Checks images of `size` `(height, width)` can be zero-padded to `image_size`.

    Returns:
        The rows and columns to add, `(extra_height, extra_width)`.

    Raises:
        ValueError: `image_size` is smaller than `size`, with the options that
            resize instead, where each one is offered.
    """
    height, width = check_image_size("image_size", image_size)
    extra_h, extra_w = height - int(size[0]), width - int(size[1])
    if extra_h < 0 or extra_w < 0:
        raise ValueError(
            f"Cannot pad {size[0]}x{size[1]} images to the smaller image_size "
            f"{height}x{width}: zero padding only enlarges. Resize them instead: "
            "resize_images(images, image_size), prepare_images(..., method='resize'), "
            "resize_method='resize' in kps.data.load, kps.evaluation.linear_eval and "
            "kps.evaluation.finetune (--resize_method=resize in recipes/linear_eval.py "
            f"and recipes/finetune.py); or use an image_size of at least {size[0]}x{size[1]}."
        )
    return extra_h, extra_w


def pad_images(images, image_size):
    """Zero-pads uint8 images evenly on all sides to `image_size` (e.g. 28 -> 32).

    Args:
        images: uint8 array `(num_images, height, width, channels)`.
        image_size: target `(height, width)` or an int, not smaller than the images.

    Returns:
        The padded uint8 array.

    Example (a 2x2 image padded to 4x4, one zero row and column on each side):

    >>> pad_images(np.ones((1, 2, 2, 1), "uint8"), 4)[0, :, :, 0]
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]], dtype=uint8)
    """
    images = check_uint8_images(images)
    extra_h, extra_w = check_pad_size(images.shape[1:3], image_size)
    pad = (
        (0, 0),
        (extra_h // 2, extra_h - extra_h // 2),
        (extra_w // 2, extra_w - extra_w // 2),
        (0, 0),
    )
    return np.pad(images, pad)


def resize_images(images, image_size, batch_size=1024):
    """Resizes uint8 images bilinearly (antialiased when shrinking), in chunks.

    Args:
        images: uint8 array `(num_images, height, width, channels)`.
        image_size: target `(height, width)` or an int.
        batch_size: images resized at a time (bounds the float32 memory).

    Returns:
        The resized uint8 array.

    Example:

    >>> resize_images(np.zeros((2, 28, 28, 1), "uint8"), 32).shape
    (2, 32, 32, 1)
    """
    import tensorflow as tf

    images = check_uint8_images(images)
    size = check_image_size("image_size", image_size)
    if tuple(images.shape[1:3]) == size:
        return images
    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = tf.image.resize(images[start : start + batch_size], size, antialias=True)
        chunks.append(np.clip(np.round(chunk.numpy()), 0, 255).astype(np.uint8))
    return np.concatenate(chunks)


def convert_channels(images, channels):
    """Repeats a grey channel to RGB (1 -> 3) or takes the luma of RGB (3 -> 1).

    Args:
        images: uint8 array `(num_images, height, width, 1 or 3)`.
        channels: 1 or 3.

    Returns:
        The uint8 array with `channels` channels.

    Example:

    >>> convert_channels(np.zeros((2, 28, 28, 1), "uint8"), 3).shape
    (2, 28, 28, 3)
    """
    images = check_uint8_images(images)
    check_choice("channels", channels, (1, 3))
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]


def prepare_images(images, image_size=None, channels=None, method="pad"):
    """Brings uint8 images to the size and channels a model needs.

    Args:
        images: uint8 array `(num_images, height, width, channels)`.
        image_size: target `(height, width)` or an int; `None` keeps the size.
        channels: 1 or 3; `None` keeps the channels.
        method: `"pad"` (zero padding, e.g. Fashion-MNIST 28 -> 32, as the
            LeNet/CIFAR-style models expect) or `"resize"` (bilinear).

    Returns:
        The uint8 array.

    Example:

    >>> prepare_images(np.zeros((2, 28, 28, 1), "uint8"), 32, channels=3).shape
    (2, 32, 32, 3)
    """
    check_choice("method", method, ("pad", "resize"))
    images = check_uint8_images(images)
    if image_size is not None:
        images = (
            pad_images(images, image_size) if method == "pad" else resize_images(images, image_size)
        )
    if channels is not None:
        images = convert_channels(images, channels)
    return images
