"""Argument and input checks with messages that name what went wrong."""

import math
import numbers

import numpy as np
from keras import ops


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_non_negative(name, value):
    """Checks a finite number >= 0; returns it as a float."""
    if not _is_number(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a finite non-negative number. Received: {name}={value!r}"
        )
    return float(value)


def check_positive(name, value):
    """Checks a finite number > 0; returns it as a float."""
    if not _is_number(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite positive number. Received: {name}={value!r}")
    return float(value)


def check_momentum(name, value):
    """Checks a moving-average momentum: a number in [0, 1)."""
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")


def check_projector_dims(dims):
    """Checks projector widths: positive ints, the last the embedding width."""
    if not dims or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in dims
    ):
        raise ValueError(
            "`projector_dims` must be positive ints, the last being the embedding width, "
            f"e.g. (2048, 2048, 2048). Received: projector_dims={dims!r}"
        )


def check_int(name, value, minimum, maximum=None, allow_none=False):
    """Checks an int in `[minimum, maximum]` (`maximum=None`: no upper bound)."""
    if value is None and allow_none:
        return
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"`{name}` must be an int {bound}. Received: {name}={value!r}")


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {sorted(choices, key=str)}. Received: {name}={value!r}"
        )


def _static_shape(x):
    # The static shape (None for unknown dims); `ops.shape` would return
    # symbolic tensors for unknown dims inside a TF graph.
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = ops.shape(x)
    return tuple(None if d is None else int(d) for d in shape)


def _is_floating_or_int(x):
    dtype = str(getattr(x, "dtype", "")).lower()
    return any(k in dtype for k in ("float", "int"))


def _check_batch(name, tensors, rank, layout, what):
    """Rank, numeric dtype, equal shapes and batch >= 2 of `tensors`."""
    shapes = [_static_shape(t) for t in tensors]
    for i, shape in enumerate(shapes):
        if len(shape) != rank:
            raise ValueError(
                f"`{name}` expects {what}s of shape {layout}; {what} {i + 1} has shape {shape}."
            )
        if not _is_floating_or_int(tensors[i]):
            raise ValueError(
                f"`{name}` expects numeric {what}s; {what} {i + 1} has dtype {tensors[i].dtype}."
            )
    for i, shape in enumerate(shapes[1:], start=2):
        if not _shapes_match(shapes[0], shape):
            raise ValueError(
                f"`{name}` expects all {what}s to have the same shape; {what} 1 "
                f"has shape {shapes[0]} but {what} {i} has shape {shape}."
            )
    batch = shapes[0][0]
    if batch is not None and batch < 2:
        raise ValueError(
            f"`{name}` computes batch statistics and needs batch_size >= 2. "
            f"Received batch_size={batch}. Use drop_remainder=True when batching."
        )


def check_embeddings(name, *tensors):
    """Checks embeddings passed to a loss: rank 2, same shape, batch >= 2.

    Only statically known dimensions are checked, so the check costs nothing
    inside a compiled step.
    """
    _check_batch(name, tensors, 2, "(batch_size, dim)", "input")


def check_views(name, *views):
    """Checks image views given to a model: rank 4, same shape, batch >= 2."""
    _check_batch(name, views, 4, "(batch_size, height, width, channels)", "view")


def _shapes_match(a, b):
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def check_open_unit_interval(name, value):
    """Checks a number strictly between 0 and 1 (e.g. a clip distance)."""
    if not _is_number(value) or not 0.0 < value < 1.0:
        raise ValueError(f"`{name}` must be in (0, 1). Received: {name}={value!r}")


def static_shape(x):
    """The static shape of `x` as a tuple of ints (None for unknown dims)."""
    return _static_shape(x)


def check_in_range(name, value, low, high):
    """Checks a finite number in the closed interval `[low, high]`; returns it as a float."""
    if not _is_number(value) or not low <= value <= high:
        raise ValueError(
            f"`{name}` must be a number in [{low}, {high}]. Received: {name}={value!r}"
        )
    return float(value)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_image_size(name, value):
    """Checks an image size, a positive int or a pair `(height, width)` of them.

    Returns:
        The `(height, width)` pair of Python ints.
    """
    pair = (value, value) if _is_int(value) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(_is_int(side) and side > 0 for side in pair)
    ):
        raise ValueError(
            f"`{name}` must be a positive int or a pair (height, width) of positive ints, "
            f"e.g. 32 or (32, 48). Received: {name}={value!r}"
        )
    return (int(pair[0]), int(pair[1]))


def check_labels(name, labels, num_classes=None):
    """Checks class labels on the host: integers in `[0, num_classes)`.

    Cheap (a NumPy pass), so a callback can check its labels once when it
    receives them, instead of failing inside a compiled step.
    `num_classes=None` checks only that the labels are integers.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return
    integral = np.issubdtype(labels.dtype, np.integer) or (
        np.issubdtype(labels.dtype, np.floating) and np.array_equal(labels, np.round(labels))
    )
    if not integral:
        raise ValueError(
            f"`{name}` must hold integer class labels. "
            f"Received: dtype={labels.dtype}, e.g. {labels.ravel()[:3].tolist()}"
        )
    if num_classes is None:
        return
    low, high = labels.min(), labels.max()
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"`{name}` must hold class labels in [0, {num_classes}) (num_classes="
            f"{num_classes}). Received labels in [{low:g}, {high:g}]. -1 marks an "
            "unlabeled image: drop those; a label >= num_classes needs a larger num_classes."
        )
