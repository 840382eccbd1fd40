"""SSLModel: tests that kill the mutants of `fit`, `call`, `check_batch` and
`_check_first_batch` that the fourth mutmut run let live.

Each test names the mutants (`keras_pid_ssl.models.ssl_model.xǁSSLModelǁ...`,
docs/testing.md) it kills. Refusals are checked by their whole message;
embeddings against the encoder and projector applied by hand to the same
images (or to the views a keyed draw gives).
"""

import importlib

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch

ssl_model_module = importlib.import_module("keras_pid_ssl.models.ssl_model")


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _model(**kwargs):
    return kps.SSLModel(tiny_encoder(), tiny_projector(), kps.losses.BarlowTwinsLoss(), **kwargs)


def _refusal(call):
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


# fit


def test_fit_refuses_y_with_the_full_message():
    """Kills fit__mutmut_3 (`NoneType.fit`), 4, 5 (the message's text) and 7 (the
    type of `y`)."""
    model = _model()
    model.compile(optimizer="sgd")
    views = view_batch(*make_views(n=8))
    assert _refusal(lambda: model.fit(views, np.zeros(8), verbose=0)) == (
        "SSLModel.fit takes batches of named views as `x` "
        '(e.g. {"view1": ..., "view2": ...}) and no `y`. Received y of type ndarray.'
    )


def test_fit_refuses_a_tuple_of_views_with_the_full_message():
    """Kills fit__mutmut_9 (`NoneType.fit`), 12, 13 (the suggested dict)."""
    model = _model()
    model.compile(optimizer="sgd")
    v1, v2 = make_views(n=8)
    assert _refusal(lambda: model.fit((v1, v2), verbose=0)) == (
        "SSLModel.fit takes batches of named views as `x`, a dict with keys "
        "['view1', 'view2'] (of arrays, or a dataset yielding such dicts); received a "
        'tuple. Pass e.g. {"view1": views1, "view2": views2}.'
    )


def test_fit_passes_positional_arguments_on_to_keras():
    """Kills fit__mutmut_21 (`*args` dropped): `fit(x, None, 8, 2)` should train 2
    epochs of 16 / 8 = 2 batches, as `fit(x, batch_size=8, epochs=2)` does (before
    the fix Keras received y=8 and refused it); with `*args` dropped one epoch of
    one batch trains, which fails the assertions."""
    model = _model()
    model.compile(optimizer="sgd")
    batches = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    history = model.fit(
        view_batch(*make_views(n=16)), None, 8, 2, verbose=0, shuffle=False, callbacks=[counter]
    ).history
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
    assert batches == [0, 1, 0, 1]


# _check_first_batch


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        # Kills _check_first_batch__mutmut_73 (`vmax > 3`): a maximum of 3 gets the hint.
        pytest.param(
            0.0,
            3.0,
            "SSLModel.fit expects float images in [0, 1]; view 'view1' has values in [0, 3] "
            "(0-255 pixels? divide by 255). Pass input_range=None if your inputs are "
            "normalised otherwise.",
            id="mutmut_73_75",
        ),
        # Kills _check_first_batch__mutmut_74 ("XXXX" without the hint): below the
        # range, no hint.
        pytest.param(
            -0.5,
            1.0,
            "SSLModel.fit expects float images in [0, 1]; view 'view1' has values in "
            "[-0.5, 1]. Pass input_range=None if your inputs are normalised otherwise.",
            id="mutmut_74_75",
        ),
    ],
)
def test_out_of_range_refusal_messages(low, high, message):
    """Kills _check_first_batch__mutmut_73, 74, 75 (the case ids say which): the
    0-255 hint appears exactly when the maximum is above 2."""
    v1, v2 = make_views(n=8)
    v1 = v1.copy()
    v1.flat[0], v1.flat[1] = low, high
    model = _model()
    model.compile(optimizer="sgd")
    assert _refusal(lambda: model.fit(view_batch(v1, v2), verbose=0)) == message


# check_batch


def test_check_batch_refuses_missing_views_with_the_full_message():
    """Kills check_batch__mutmut_16 (`None expects`), 17 (`NoneType expects`), 26, 27
    (the fix)."""
    v1, _ = make_views(n=4)
    assert _refusal(lambda: _model().check_batch({"view1": v1})) == (
        "SSLModel expects batches that are dicts with keys ['view1', 'view2']; this one "
        "has ['view1'], missing ['view2']. Build the dataset with kps.data.ssl_dataset, "
        "or yield such dicts."
    )


def test_check_batch_checks_a_new_dtype_of_a_seen_structure():
    """Kills check_batch__mutmut_4, 5, 11, 12 (the dtype left out of the structure a
    checked batch is remembered by) and 32 (`None` named in the refusal): after
    float32 views pass, boolean views of the same shape are still refused."""
    model = _model()
    v1, v2 = make_views(n=4)
    model.check_batch({"view1": v1, "view2": v2})
    bools = {"view1": v1 > 0.5, "view2": v2 > 0.5}
    assert _refusal(lambda: model.check_batch(bools)) == (
        "`SSLModel` expects numeric views; view 1 has dtype bool."
    )


def test_check_batch_checks_each_structure_once(monkeypatch):
    """Kills check_batch__mutmut_36 (`None` remembered instead of the structure):
    the views of a structure already seen are not checked again; a new shape is."""
    calls = []
    original = ssl_model_module.check_views

    def counting(name, *views):
        calls.append(tuple(v.shape for v in views))
        return original(name, *views)

    monkeypatch.setattr(ssl_model_module, "check_views", counting)
    model = _model()
    v1, v2 = make_views(n=4)
    model.check_batch({"view1": v1, "view2": v2})
    model.check_batch({"view1": v2, "view2": v1})
    assert calls == [((4, 8, 8, 1), (4, 8, 8, 1))]
    w1, w2 = make_views(n=6)
    model.check_batch({"view1": w1, "view2": w2})
    assert calls == [((4, 8, 8, 1), (4, 8, 8, 1)), ((6, 8, 8, 1), (6, 8, 8, 1))]


class _ShapeOnly:
    """An array-like label with a shape and no dtype."""

    shape = (4,)


def test_check_batch_takes_a_label_without_a_dtype():
    """Kills check_batch__mutmut_10 (`getattr(value, "dtype")` without a default):
    a label with a shape and no dtype passes, as labels are not views."""
    model = _model()
    v1, v2 = make_views(n=4)
    model.check_batch({"view1": v1, "view2": v2, "label": _ShapeOnly()})
    assert len(model.checked_structures) == 1


# call: `training` reaches the encoder and projector when Keras calls `call`
# directly (`stateless_call`, as the JAX trainer does), outside a call context.


def _stateless(model, x, training):
    outputs, non_trainable = model.stateless_call(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        x,
        training=training,
    )
    return outputs, [_numpy(v) for v in non_trainable]


def _by_hand(model, images, training):
    return _numpy(model.projector(model.encoder(images, training=training), training=training))


def test_stateless_call_on_images_embeds_in_training_mode():
    """Kills call__mutmut_58 (`training` not passed on for a batch of images): with
    `training=True` the projector's batch norm uses the batch's statistics (the
    embeddings of `projector(encoder(x, training=True), training=True)`, not those
    in inference mode) and moves its moving mean."""
    model = _model()
    images = keras.ops.convert_to_tensor(make_views(n=8)[0])
    before = [_numpy(v) for v in model.non_trainable_variables]
    outputs, after = _stateless(model, images, training=True)
    expected = _by_hand(model, images, training=True)
    np.testing.assert_allclose(_numpy(outputs), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected, _by_hand(model, images, training=False), atol=1e-3)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


def test_stateless_call_with_augment_embeds_the_views_in_training_mode():
    """Kills call__mutmut_30 (`training` not passed on for the views `augment`
    draws): a training call embeds the views of step 0 as
    `projector(encoder(view, training=True), training=True)`."""
    model = _model(augment=kps.augment.preset("grayscale", image_size=8, seed=3))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 8, 8, 1), dtype=np.uint8)
    views = model.draw_views({"images": images}, step=0)
    outputs, _ = _stateless(model, {"images": keras.ops.convert_to_tensor(images)}, True)
    for key in ("view1", "view2"):
        expected = _by_hand(model, views[key], training=True)
        np.testing.assert_allclose(_numpy(outputs[key]), expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(expected, _by_hand(model, views[key], training=False), atol=1e-3)


def test_a_positional_batch_size_is_the_one_the_size_check_uses():
    """`fit(x, None, 3)` with 7 images leaves a last batch of one: refused, naming
    batch_size=3 (the check read only keyword arguments before); 33 images at a
    positional batch_size of 5 train, though 33 % 32 (Keras's default) is 1."""
    with pytest.raises(ValueError, match=r"7 images with batch_size=3 leave a last batch"):
        _model().fit(view_batch(*make_views(n=7)), None, 3, verbose=0)
    model = _model()
    model.compile(optimizer="sgd")
    history = model.fit(view_batch(*make_views(n=33)), None, 5, 1, verbose=0).history
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
