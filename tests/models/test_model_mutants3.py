"""SSLModel and PIDModel: checks that kill the mutants the third mutmut run let live.

Each test names the mutants (docs/testing.md) it kills. References are the
images converted in NumPy, the views a keyed draw (`draw_views(..., step=k)`)
gives for the step the docstrings promise, and the loss on embeddings of
those views computed outside `compute_loss`.
"""

import importlib
import sys
import types

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import augmenting_model
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import uint8_images
from keras_pid_ssl.augment.views import key_seed_states

ssl_model_module = importlib.import_module("keras_pid_ssl.models.ssl_model")


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _preset(target=None):
    return kps.augment.preset("grayscale", image_size=8, target=target, seed=3)


def _views(model, images, **kwargs):
    views = model.draw_views({"images": images}, **kwargs)
    return {key: _numpy(value) for key, value in views.items()}


def _jax_x64():
    import jax

    return bool(jax.config.read("jax_enable_x64"))


def test_float_images_in_the_unit_interval_are_not_rescaled():
    """Kills `draw_views__mutmut_6` (float images divided by 255 too) and
    `__mutmut_12` (divided by 2): float images in [0, 1] pass unchanged
    through an identity augmentation, and a preset draws from them the views
    it draws from the same images as uint8 (x 255)."""
    images = uint8_images(4, 8, 1)
    floats = images.astype(np.float32) / np.float32(255.0)
    identity = augmenting_model(keras.layers.Identity(), size=8, channels=1)
    for view in _views(identity, floats, step=0).values():
        np.testing.assert_array_equal(view, floats)
    model = augmenting_model(_preset(), size=8, channels=1)
    from_uint8 = _views(model, images, step=3)
    from_floats = _views(model, floats, step=3)
    for key in ("view1", "view2"):
        np.testing.assert_allclose(from_floats[key], from_uint8[key], atol=1e-6)


def test_views_are_computed_from_float32_pixels_whatever_the_floatx(float64_floatx):
    """Kills `draw_views__mutmut_16` (uint8 pixels cast to floatx, not float32)
    and `__mutmut_43` (views cast to floatx, not float32). Under a float64
    floatx an augmentation scaling by 3 runs in float64: from float32 pixels
    x / 255 it gives exactly their float32 product by 3 in NumPy (the float64
    product of two float32 values is exact), and the views are float32 as
    documented; from float64 pixels 77 of the 256 values round otherwise."""
    if keras.backend.backend() == "jax" and not _jax_x64():
        pytest.skip("no float64 arrays on this backend (JAX without jax_enable_x64)")
    images = np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1)
    model = augmenting_model(keras.layers.Rescaling(3.0), size=8, channels=1)
    # The backend's float32 x / 255 (JAX's is 1 ulp off NumPy's correctly
    # rounded quotient for about half of the values).
    pixels = _numpy(keras.ops.cast(images, "float32") / 255.0)
    assert pixels.dtype == np.float32
    np.testing.assert_allclose(pixels, images / 255.0, rtol=1e-7)
    expected = pixels * np.float32(3.0)
    for view in _views(model, images, step=0).values():
        assert view.dtype == np.float32
        np.testing.assert_array_equal(view, expected)


def test_a_training_draw_is_keyed_on_the_exact_step_counter():
    """Kills `_replica_position__mutmut_5` (one replica counted as two:
    step 2k) and `draw_views__mutmut_24` (k / replicas: a float, which rounds
    a counter past 2^24 on PyTorch and JAX). With the counter at k = 2^24 + 1,
    a training draw gives the views of the keyed draw at step k and counts k + 1."""
    images = uint8_images(4, 8, 1)
    model = augmenting_model(_preset(), size=8, channels=1)
    k = 2**24 + 1
    expected = _views(model, images, step=k)
    model.augment_step.assign(k)
    drawn = _views(model, images, training=True)
    for key in ("view1", "view2"):
        np.testing.assert_allclose(drawn[key], expected[key], atol=1e-6)
    assert int(_numpy(model.augment_step.value)) == k + 1


def test_replica_r_of_n_keys_its_draw_on_step_times_n_plus_r(monkeypatch):
    """Kills `_replica_position__mutmut_2` and `__mutmut_3` (two replicas
    taken for one: step k), `draw_views__mutmut_23` (k n - r) and
    `__mutmut_24` (k / n + r). A stand-in replica context (replica 1 of 2,
    as in tests/distribute/test_replicas_unit.py) at counter k = 3 must draw
    the keyed views of step 3 * 2 + 1 = 7 (the class docstring)."""
    tf = pytest.importorskip("tensorflow")
    images = uint8_images(4, 8, 1)
    model = augmenting_model(_preset(), size=8, channels=1)
    expected = _views(model, images, step=7)
    context = types.SimpleNamespace(replica_id_in_sync_group=1, num_replicas_in_sync=2)
    monkeypatch.setattr(ssl_model_module, "num_replicas_in_sync", lambda: 2)
    monkeypatch.setattr(tf.distribute, "get_replica_context", lambda: context)
    model.augment_step.assign(3)
    drawn = _views(model, images, training=True)
    for key in ("view1", "view2"):
        np.testing.assert_allclose(drawn[key], expected[key], atol=1e-6)
    assert int(_numpy(model.augment_step.value)) == 4


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow", reason="TensorFlow is the backend itself"
)
def test_a_training_draw_needs_no_tensorflow_on_jax_and_torch(monkeypatch):
    """Kills `_replica_position__mutmut_2` and `__mutmut_3` (one replica
    taken for several: TensorFlow imported to ask for the replica id).
    TensorFlow is an optional extra; with it unimportable, as in an install
    without it, a training draw still gives the keyed views of step 0."""
    images = uint8_images(4, 8, 1)
    model = augmenting_model(_preset(), size=8, channels=1)
    expected = _views(model, images, step=0)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    drawn = _views(model, images, training=True)
    for key in ("view1", "view2"):
        np.testing.assert_allclose(drawn[key], expected[key], atol=1e-6)
    assert int(_numpy(model.augment_step.value)) == 1


def test_views_drawn_inside_an_inference_call_are_augmented():
    """Kills `draw_views__mutmut_32` (`training=True` not passed to
    `augment`). A call in inference mode (`evaluate`, `model(batch,
    training=False)`) must still augment its views: the augmentation layers
    would otherwise take inference mode from the call and return the images
    as they are. Keyed on step 5 by hand, the call's view embeddings are
    those of the keyed draw at step 5."""
    images = uint8_images(4, 8, 1)
    model = augmenting_model(_preset(), size=8, channels=1)
    views = model.draw_views({"images": images}, step=5)
    key_seed_states(model.augment, 5)
    outputs = model({"images": images}, training=False)
    for key in ("view1", "view2"):
        expected = model.projector(model.encoder(views[key], training=False), training=False)
        np.testing.assert_allclose(_numpy(outputs[key]), _numpy(expected), atol=1e-5)


def test_an_encoder_without_a_fixed_image_size_gets_the_preset_size():
    """Kills `_encoder_image_size__mutmut_7` (any input shape taken as a size)
    and `__mutmut_8` (`or`): an encoder taking images of any size has input
    shape (None, None, None, 1); the preset then draws views of its own size
    (grayscale: 28 x 28) instead of refusing the size (None, None)."""
    encoder = keras.Sequential(
        [
            keras.Input((None, None, 1)),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    model = kps.SSLModel(
        encoder, tiny_projector(), loss=kps.losses.BarlowTwinsLoss(), augment="grayscale"
    )
    images = uint8_images(n=4, size=20, channels=1)
    for view in _views(model, images, step=0).values():
        assert view.shape == (4, 28, 28, 1)
        assert view.min() >= 0.0 and view.max() <= 1.0


def test_pid_compute_loss_without_y_pred_draws_the_views_and_the_target():
    """Kills `PIDModel.compute_loss__mutmut_3` (`y_pred` not computed: the
    views are drawn inside `embeddings`, and the target view drawn by
    `augment` never reaches `target`). Reference: the keyed views of step 0
    embedded outside `compute_loss` (batch statistics) and the PID loss on
    them."""
    images = uint8_images(n=16, size=8, channels=1)
    model = kps.PIDModel(
        tiny_encoder(8, 1),
        tiny_projector(),
        loss=kps.losses.PIDLoss(w_joint=0.3, w_red=0.5, w_syn=1.0),
        track_gradient_ratio=False,
        augment=_preset(target="clean"),
    )
    views = model.draw_views({"images": images}, step=0)

    def embed(view):
        return model.projector(model.encoder(view, training=True), training=True)

    expected = model.ssl_loss.terms(
        embed(views["view1"]), embed(views["view2"]), embed(views["target"])
    )["loss"]
    loss = model.compute_loss(x={"images": images})
    np.testing.assert_allclose(_numpy(loss), _numpy(expected), rtol=1e-5, atol=1e-6)
    assert int(_numpy(model.augment_step.value)) == 1
