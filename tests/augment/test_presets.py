"""Presets: the published recipes per view, independent views, per-image parameters."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pid_ssl import augment


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _images(n=8, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, size, size, channels)).astype("float32")


def _layers(pipeline):
    """(type name, rate of the enclosing RandomApply or None, inner layer) per step."""
    steps = []
    for layer in pipeline.layers:
        if isinstance(layer, augment.RandomApply):
            steps.append((type(layer.layer).__name__, layer.rate, layer.layer))
        else:
            steps.append((type(layer).__name__, None, layer))
    return steps


def _step(pipeline, name):
    matches = [s for s in _layers(pipeline) if s[0] == name]
    return matches[0] if matches else None


@pytest.mark.parametrize("name", augment.PRESETS)
def test_views_have_the_right_shape_and_range(name):
    channels = 1 if name == "grayscale" else 3
    views = augment.preset(name, image_size=16)
    outputs = [_numpy(v) for v in views(_images(channels=channels))]
    assert len(outputs) == 3
    for out in outputs:
        assert out.shape == (8, 16, 16, channels) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_cifar_recipe():
    view1 = augment.view_pipeline("cifar", view=1)
    view2 = augment.view_pipeline("cifar", view=2)
    crop = _step(view1, "RandomResizedCrop")[2]
    assert crop.size == (32, 32) and crop.scale == (0.08, 1.0)
    assert _step(view1, "RandomFlip")[2].mode == "horizontal"
    _, p, jitter = _step(view1, "ColorJitter")
    assert p == 0.8 and (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.4,
        0.4,
        0.2,
        0.1,
    )
    assert _step(view1, "RandomGrayscale")[2].factor == 0.2
    assert _step(view1, "GaussianBlur") is None and _step(view2, "GaussianBlur") is None
    # Asymmetric solarization: never on view 1, p = 0.2 on view 2.
    assert _step(view1, "Solarize") is None and _step(view2, "Solarize")[1] == 0.2


def test_imagenet_recipe_blurs_view1_always_and_view2_rarely():
    view1 = augment.view_pipeline("imagenet", view=1)
    view2 = augment.view_pipeline("imagenet", view=2)
    assert _step(view1, "RandomResizedCrop")[2].size == (224, 224)
    assert _step(view1, "GaussianBlur")[1] == 1.0 and _step(view2, "GaussianBlur")[1] == 0.1
    assert _step(view1, "GaussianBlur")[2].sigma == (0.1, 2.0)
    assert _step(view1, "Solarize") is None and _step(view2, "Solarize")[1] == 0.2


def test_grayscale_recipe_has_no_colour_operations():
    for view in (1, 2):
        pipeline = augment.view_pipeline("grayscale", view=view)
        jitter = _step(pipeline, "ColorJitter")[2]
        assert jitter.saturation == 0.0 and jitter.hue == 0.0 and jitter.brightness == 0.4
        assert _step(pipeline, "RandomGrayscale") is None


def test_the_two_views_of_an_image_differ_and_so_do_the_images_of_a_batch():
    images = np.repeat(_images(n=1), 8, axis=0)
    view1, view2, _ = (_numpy(v) for v in augment.preset("cifar", image_size=16)(images))
    assert all(not np.allclose(view1[i], view2[i]) for i in range(8))
    assert all(not np.allclose(view1[0], view1[i]) for i in range(1, 8))


def test_the_views_differ_inside_tf_data_too():
    images = np.repeat(_images(n=1), 8, axis=0)
    views = augment.preset("imagenet", image_size=16, seed=1)
    view1, view2, target = (
        o.numpy()
        for o in next(iter(tf.data.Dataset.from_tensor_slices(images).batch(8).map(views)))
    )
    assert all(not np.allclose(view1[i], view2[i]) for i in range(8))
    assert all(not np.allclose(view1[0], view1[i]) for i in range(1, 8))
    np.testing.assert_allclose(target, images, atol=1e-5)


def test_clean_target_is_the_resized_image_and_weak_target_a_flip_of_it():
    images = _images(n=64)
    clean = _numpy(augment.target_pipeline("clean", image_size=16)(images))
    np.testing.assert_allclose(clean, images, atol=1e-5)
    resized = _numpy(augment.target_pipeline("clean", image_size=(8, 12))(images))
    np.testing.assert_allclose(
        resized, tf.image.resize(images, (8, 12), antialias=True).numpy(), atol=1e-5
    )
    weak = _numpy(augment.target_pipeline("weak", image_size=16, seed=3)(images))
    flipped = np.all(np.isclose(weak, images[:, :, ::-1]), axis=(1, 2, 3))
    same = np.all(np.isclose(weak, images), axis=(1, 2, 3))
    assert np.all(flipped | same) and 10 < flipped.sum() < 54


def test_two_view_preset_has_no_target():
    views = augment.preset("cifar", image_size=16, target=None)
    assert views.num_views == 2 and len(views(_images())) == 2


def test_a_seed_makes_the_views_reproducible():
    images = _images()
    first = [_numpy(v) for v in augment.preset("cifar", image_size=16, seed=5)(images)]
    second = [_numpy(v) for v in augment.preset("cifar", image_size=16, seed=5)(images)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_allclose(a, b)


def test_views_config_round_trip():
    views = augment.preset("imagenet", image_size=(8, 12), target="weak", seed=2)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(views))
    assert isinstance(clone, augment.Views) and clone.num_views == 3
    assert [type(s).__name__ for s in clone.view1.layers] == [
        type(s).__name__ for s in views.view1.layers
    ]
    assert _step(clone.view2, "GaussianBlur")[1] == 0.1
    out = [_numpy(v) for v in clone(_images())]
    assert all(o.shape == (8, 8, 12, 3) for o in out)


def test_keras_core_layers_are_drop_in_steps():
    pipeline = keras.layers.Pipeline(
        [
            augment.RandomResizedCrop(12),
            augment.RandomApply(
                keras.layers.RandomColorJitter(
                    value_range=(0, 1), brightness_factor=0.2, hue_factor=0.1
                ),
                0.8,
            ),
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomGaussianBlur(factor=0.5, value_range=(0, 1)),
        ]
    )
    dataset = tf.data.Dataset.from_tensor_slices(_images()).batch(8).map(pipeline)
    out = next(iter(dataset)).numpy()
    assert out.shape == (8, 12, 12, 3) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: augment.preset("simclr"), "Unknown augmentation preset"),
        (
            lambda: augment.preset("cifar", target="blurred"),
            r"`target` must be one of \[None, 'clean', 'weak'\]. Received: target='blurred'",
        ),
        (lambda: augment.target_pipeline("blurred"), "`kind` must be one of"),
        (lambda: augment.view_pipeline("cifar", view=3), "`view`"),
        (
            lambda: augment.preset("cifar", image_size=32.5),
            r"`image_size` must be a positive int or a pair \(height, width\)",
        ),
        (lambda: augment.target_pipeline("clean", image_size=(32, 0)), "`image_size`"),
    ],
)
def test_bad_preset_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_views_need_layers():
    with pytest.raises(ValueError, match="`view2` must be a Keras layer"):
        augment.Views(keras.layers.Identity(), "flip")
