"""SSLModel.fit's input checks: tests that kill the mutants of `_check_batch_sizes`
and `_check_first_batch` that earlier tests let live.

Each test names the mutants (`keras_pid_ssl.models.ssl_model.xǁSSLModelǁ...`,
docs/testing.md) it kills. Refusals are checked by their whole message (the
model's class, the view, the numbers and the fix); acceptances by `fit`
training one epoch.
"""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch
from conftest import view_dataset


def _model(**kwargs):
    model = kps.SSLModel(tiny_encoder(), tiny_projector(), kps.losses.BarlowTwinsLoss(), **kwargs)
    model.compile(optimizer="sgd")
    return model


def _trains(model, x, **kwargs):
    """`fit` accepted `x`: one epoch ran and logged a finite loss."""
    history = model.fit(x, epochs=1, verbose=0, **kwargs).history
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])


def _refusal(x, **kwargs):
    """The message of the ValueError `fit` refuses `x` with."""
    with pytest.raises(ValueError) as info:
        _model().fit(x, epochs=1, verbose=0, **kwargs)
    return str(info.value)


def _views(n, low=0.0, high=1.0):
    """Two views of `n` images spanning exactly `[low, high]` (float32)."""
    v1, v2 = make_views(n=n)
    v1 = v1.copy()
    v1.flat[0], v1.flat[1] = low, high
    return view_batch(v1, v2)


# _check_batch_sizes


def test_unknown_batch_dimension_refusal_message():
    """Kills _check_batch_sizes__mutmut_44, 45, 46, 47, 48, 49, 52, 53 (the message)."""
    dataset = view_dataset(*make_views(n=6), batch_size=4, drop_remainder=False)
    assert _refusal(dataset) == (
        "SSLModel.fit needs datasets whose batches all have one known size: view 'view1' "
        "has an unknown batch dimension (element_spec shape (None, 8, 8, 1)), so a last, "
        "smaller batch may hold a single image, which batch statistics cannot use (it would "
        "train silently on TensorFlow and fail mid-epoch on JAX and PyTorch). Batch the "
        "dataset with .batch(batch_size, drop_remainder=True) (kps.data.ssl_dataset does "
        "by default)."
    )


def test_a_label_of_unknown_batch_size_is_not_a_view():
    """Kills _check_batch_sizes__mutmut_37, 38 ("label" misspelt: the label is checked
    as a view). A per-pixel (rank-4) label whose batch dimension is unknown next to
    views of known batch size trains: only views need batch statistics."""
    import tensorflow as tf

    v1, v2 = make_views(n=8)
    masks = (v1 > 0.5).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(view_batch(v1, v2, label=masks))
    dataset = dataset.batch(4, drop_remainder=True).map(
        lambda b: {**b, "label": tf.boolean_mask(b["label"], tf.ones([4], tf.bool))}
    )
    assert dataset.element_spec["view1"].shape[0] == 4
    assert dataset.element_spec["label"].shape.as_list() == [None, 8, 8, 1]
    _trains(_model(), dataset, shuffle=False)


def test_augment_model_trains_on_batches_with_nested_extra_entries():
    """Kills _check_batch_sizes__mutmut_31 (`getattr(view, "shape")` without a
    default: AttributeError on an entry that is a dict). A model that draws its
    views takes only `images` (and `label`) from a batch, so a nested entry
    such as `{"meta": {"id": ...}}` rides along."""
    import tensorflow as tf

    images = (make_views(n=8)[0] * 255).astype("uint8")
    dataset = tf.data.Dataset.from_tensor_slices({"images": images, "meta": {"id": np.arange(8)}})
    _trains(_model(augment="grayscale"), dataset.batch(4, drop_remainder=True), shuffle=False)


class _Batches(keras.utils.PyDataset):
    """Two batches of 4 views each."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return view_batch(*make_views(n=4, seed=index))


def test_fit_trains_on_a_py_dataset_of_views():
    """Kills _check_batch_sizes__mutmut_54 (`or` -> `and`: a non-empty PyDataset is
    taken for a dict of arrays, and `x.values()` raises AttributeError)."""
    _trains(_model(), _Batches())


def test_fit_refuses_one_image_with_the_full_message():
    """Kills _check_batch_sizes__mutmut_90, 91, 92 (the message)."""
    assert _refusal(_views(1)) == (
        "SSLModel.fit received 1 image(s) to train on; batch statistics need at least 2 "
        "images per batch. Pass more images."
    )


def test_fit_trains_on_two_images():
    """Kills _check_batch_sizes__mutmut_87, 88 (`count < 2` -> `<= 2`, `< 3`)."""
    _trains(_model(), _views(2))


@pytest.mark.parametrize(
    ("n", "batch_size", "suggestion"),
    [
        # The message; `//` -> `/` in "17 = 1 x 16 + 1".
        pytest.param(17, 16, 15, id="mutmut_113_114_115_116"),
        # Keras's default batch_size 32 -> 33.
        pytest.param(33, None, 31, id="mutmut_86"),
        # Suggestions stop above 2: StopIteration.
        pytest.param(4, 3, 2, id="mutmut_106"),
        # Step -2 skips 3 (StopIteration); `%` -> `/` suggests 4.
        pytest.param(21, 5, 3, id="mutmut_108_109"),
        # No smaller batch size avoids a batch of one: the smallest larger one
        # (this raised a bare StopIteration before).
        pytest.param(3, 2, 3, id="no_smaller_size_3"),
        pytest.param(13, 4, 5, id="no_smaller_size_13"),
    ],
)
def test_last_batch_of_one_refusal_message(n, batch_size, suggestion):
    """Kills _check_batch_sizes__mutmut_86, 106, 108, 109, 113, 114, 115, 116
    (each case names its own). The suggested batch size is the largest below
    `batch_size` that leaves no batch of one."""
    kwargs = {} if batch_size is None else {"batch_size": batch_size}
    size = 32 if batch_size is None else batch_size
    assert n % size == 1 and n % suggestion != 1
    # The largest working size below `size`, else the smallest above it.
    below = [b for b in range(2, size) if n % b != 1]
    assert suggestion == (
        max(below) if below else min(b for b in range(size + 1, n + 1) if n % b != 1)
    )
    assert _refusal(_views(n), **kwargs) == (
        f"SSLModel.fit: {n} images with batch_size={size} leave a last batch of 1 image "
        f"({n} = {n // size} x {size} + 1), which batch statistics cannot use. Pass a "
        "batch_size that leaves a remainder of 0 or at least 2 "
        f"(e.g. batch_size={suggestion}), or drop one image."
    )


# _check_first_batch


def _nan_views():
    batch = _views(8)
    batch["view1"][3, 2, 2, 0] = np.nan
    return batch


@pytest.mark.parametrize(
    ("x", "message"),
    [
        # Kills _check_first_batch__mutmut_7, 9, 10, 11.
        (
            lambda: make_views(n=8)[0],
            "SSLModel.fit expects batches that are dicts of views with keys "
            "['view1', 'view2']; received a ndarray. Build the dataset with "
            "kps.data.ssl_dataset, or pass a dict of arrays.",
        ),
        # Kills _check_first_batch__mutmut_32, 33, 34, 35.
        (
            lambda: view_batch(*[(v * 255).astype("uint8") for v in make_views(n=8)]),
            "SSLModel.fit expects float images in [0, 1]; view 'view1' has dtype uint8. "
            "Convert with images / 255 (kps.data.ssl_dataset does), or pass input_range=None.",
        ),
        # Kills _check_first_batch__mutmut_39.
        (
            lambda: view_batch(*make_views(n=0)),
            "SSLModel.fit received an empty view 'view1' (shape (0, 8, 8, 1)); it needs at "
            "least 2 images per batch.",
        ),
        # Kills _check_first_batch__mutmut_44, 49, 50, 51.
        (
            _nan_views,
            "SSLModel.fit expects finite pixel values; view 'view1' holds 1 NaN or infinite "
            "values. Clean the images before training.",
        ),
        # Kills _check_first_batch__mutmut_67, 69 (hint always), 72 (`vmax >= 2`):
        # up to 2 exactly, no 0-255 hint.
        (
            lambda: _views(8, low=0.0, high=2.0),
            "SSLModel.fit expects float images in [0, 1]; view 'view1' has values in [0, 2]. "
            "Pass input_range=None if your inputs are normalised otherwise.",
        ),
        (
            lambda: _views(8, low=0.0, high=255.0),
            "SSLModel.fit expects float images in [0, 1]; view 'view1' has values in "
            "[0, 255] (0-255 pixels? divide by 255). Pass input_range=None if your inputs "
            "are normalised otherwise.",
        ),
    ],
    ids=["array", "uint8", "empty", "nan", "up_to_2", "up_to_255"],
)
def test_first_batch_refusal_messages(x, message):
    """Kills _check_first_batch__mutmut_7, 9, 10, 11, 32, 33, 34, 35, 39, 44, 49, 50,
    51, 67, 69, 72 (the case comments say which): the message names the model's
    class, the view, what is wrong with it and the fix."""
    assert _refusal(x()) == message


def test_first_batch_checks_the_views_after_a_label():
    """Kills _check_first_batch__mutmut_17 (`continue` -> `break` after a non-image
    entry): with the label first in the dict, the 0-255 view after it is
    still refused."""
    v1, v2 = make_views(n=8)
    batch = {"label": np.arange(8), "view1": v1 * 255.0, "view2": v2}
    assert "view 'view1' has values in [" in _refusal(batch)


def test_augment_model_checks_the_float_views_after_its_uint8_images():
    """Kills _check_first_batch__mutmut_25 (`continue` -> `break` after the uint8
    `images` a model with `augment` takes): a float entry after them is still
    checked, and a 0-255 one refused."""
    v1, _ = make_views(n=8)
    batch = {"images": (v1 * 255).astype("uint8"), "view1": v1 * 255.0}
    with pytest.raises(ValueError, match="view 'view1' has values in \\[0, 25"):
        _model(augment="grayscale").fit(batch, batch_size=4, epochs=1, verbose=0)


@pytest.mark.parametrize(
    ("input_range", "low", "high"),
    [
        # Tolerance 1e-3 x 2 = 0.002: values 0.0015 past either end pass (1e-3 / 2 and
        # 1e-3 x (1 + -1) would refuse them).
        pytest.param((-1.0, 1.0), -1.0015, 1.0015, id="mutmut_56_58"),
        # Tolerance 1e-3 x 1000 = 1 exactly: the edges -1 and 1001 themselves pass
        # (`vmin <=` or `vmax >=` would refuse them).
        pytest.param((0.0, 1000.0), -1.0, 1001.0, id="mutmut_60_62"),
    ],
)
def test_values_within_the_range_tolerance_train(input_range, low, high):
    """Kills _check_first_batch__mutmut_56, 58, 60, 62 (each case names its own):
    `fit` accepts values up to 1e-3 of the range's width outside it, edges
    included."""
    _trains(_model(input_range=input_range), _views(8, low=low, high=high), batch_size=8)


def test_without_an_input_range_a_dataset_of_tuples_is_refused_by_the_size_check():
    """Kills _check_batch_sizes__mutmut_20, 21 (the dataset-of-non-dicts refusal,
    reached when `input_range=None` skips `_check_first_batch`)."""
    tf = pytest.importorskip("tensorflow")
    view1, view2 = make_views(n=8)
    dataset = tf.data.Dataset.from_tensor_slices((view1, view2)).batch(4)
    model = _model(input_range=None)
    with pytest.raises(ValueError) as info:
        model.fit(dataset, epochs=1, verbose=0)
    assert str(info.value) == (
        "SSLModel.fit expects a dataset of dicts of views with keys "
        f"{list(model.view_keys)}; this one yields {dataset.element_spec}. Build it with "
        "kps.data.ssl_dataset, or map its elements to such dicts."
    )


@pytest.mark.parametrize(
    ("n", "split", "batch_size", "refused"),
    [
        # Keras trains on floor(10 * 0.75) = 7 images: 7 = 2 x 3 + 1.
        (10, 0.25, 3, True),
        # floor(10 * 0.85) = 8 images at batch_size 8: one full batch.
        (10, 0.15, 8, False),
    ],
)
def test_the_size_check_counts_the_training_images_as_keras_splits_them(
    n, split, batch_size, refused
):
    """Keras keeps floor(n * (1 - validation_split)) images for training; the
    check used the ceiling, letting a last batch of one through and refusing a
    split that works."""
    if refused:
        message = _refusal(_views(n), batch_size=batch_size, validation_split=split)
        assert message.startswith(f"SSLModel.fit: 7 images with batch_size={batch_size}")
    else:
        _trains(_model(), _views(n), batch_size=batch_size, validation_split=split)
