"""Augmentation on the device: `SSLModel(..., augment=...)` draws its views in the train step.

The host path (`kps.data.ssl_dataset`, `tf.data`) and the device path (the
model's `draw_views`) run the same layers; these tests check that the device
path draws what the presets configure (crop area, jitter factors, the PID
target), per image, keyed on the training step (so a resumed run draws what
an uninterrupted one draws), and trains under `jit_compile`.
"""

import os

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import augmenting_model
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import uint8_images

JIT = keras.backend.backend() in ("tensorflow", "jax")


def _pid_model(augment, size=16, channels=3, **kwargs):
    return kps.PIDModel(
        tiny_encoder(size, channels),
        tiny_projector(),
        loss=kps.losses.PIDLoss(),
        augment=augment,
        **kwargs,
    )


def _numpy_views(model, images, training=True):
    views = model.draw_views({"images": images}, training=training)
    return {key: keras.ops.convert_to_numpy(value) for key, value in views.items()}


def _coordinate_images(n, size):
    """uint8 images whose channels hold the row, the column and a constant."""
    grid = np.arange(size, dtype=np.float64) / (size - 1)
    rows = np.broadcast_to(grid[:, None], (size, size))
    cols = np.broadcast_to(grid[None, :], (size, size))
    image = np.stack([rows, cols, np.full((size, size), 0.5)], axis=-1)
    return np.broadcast_to(np.round(image * 255), (n, size, size, 3)).astype(np.uint8)


def _crop_only(scale, size, seed):
    crop = kps.augment.RandomResizedCrop(size, scale=scale, seed=seed)
    crop2 = kps.augment.RandomResizedCrop(size, scale=scale, seed=seed + 1)
    return kps.augment.Views(crop, crop2)


def _area_fractions(views, size):
    """The crop area of each view of coordinate images, as a fraction of the image.

    A crop spanning rows `[top, top + h)` resized with half-pixel centres
    samples rows `top + (i + 0.5) h / out - 0.5`, clipped to the crop: the
    row channel's range is `(h - 1) / (size - 1)` up to the 1/255 rounding
    and clipping at the crop's edge, so `h ~ range * (size - 1) + 1`.
    """
    row_range = views[..., 0].max(axis=(1, 2)) - views[..., 0].min(axis=(1, 2))
    col_range = views[..., 1].max(axis=(1, 2)) - views[..., 1].min(axis=(1, 2))
    heights = row_range * (size - 1) + 1
    widths = col_range * (size - 1) + 1
    return heights * widths / size**2


def test_views_differ_per_image_and_per_view_and_repeat_for_a_seed():
    images = np.broadcast_to(uint8_images(n=1), (8, 16, 16, 3)).copy()  # one image, 8 times
    model = augmenting_model(kps.augment.preset("cifar", image_size=16, target=None, seed=3))
    views = _numpy_views(model, images)
    assert set(views) == {"view1", "view2"}
    for key in ("view1", "view2"):
        assert views[key].dtype == np.float32 and views[key].shape == (8, 16, 16, 3)
        assert views[key].min() >= 0.0 and views[key].max() <= 1.0
        # Per-image parameters: copies of one image get different views.
        assert all(not np.allclose(views[key][0], views[key][i]) for i in range(1, 8))
    assert all(not np.allclose(views["view1"][i], views["view2"][i]) for i in range(8))

    # The same seed and step give the same views; the next step new ones.
    again = augmenting_model(kps.augment.preset("cifar", image_size=16, target=None, seed=3))
    np.testing.assert_allclose(_numpy_views(again, images)["view1"], views["view1"], atol=1e-6)
    next_step = _numpy_views(again, images)["view1"]
    assert not np.allclose(next_step, views["view1"])
    other_seed = augmenting_model(kps.augment.preset("cifar", image_size=16, target=None, seed=4))
    assert not np.allclose(_numpy_views(other_seed, images)["view1"], views["view1"])


def test_a_step_draws_the_same_views_whatever_was_drawn_before():
    images = uint8_images(n=4)
    model = augmenting_model(kps.augment.preset("cifar", image_size=16, target=None, seed=5))
    first = _numpy_views(model, images)  # training step 0
    for _ in range(3):
        _numpy_views(model, images, training=False)  # advance the generators unkeyed
    model.augment_step.assign(0)
    np.testing.assert_allclose(_numpy_views(model, images)["view2"], first["view2"], atol=1e-6)
    assert int(keras.ops.convert_to_numpy(model.augment_step.value)) == 1
    # A fixed step outside training: the same views, the counter untouched.
    fixed = model.draw_views({"images": images}, step=0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fixed["view2"]), first["view2"], atol=1e-6
    )
    assert int(keras.ops.convert_to_numpy(model.augment_step.value)) == 1


def test_uint8_images_become_floats_in_the_unit_interval():
    images = uint8_images(n=4)
    model = augmenting_model(kps.augment.Views(keras.layers.Identity(), keras.layers.Identity()))
    views = _numpy_views(model, images)
    np.testing.assert_allclose(views["view1"], images / 255.0, atol=1e-6)


def test_crop_area_lies_in_the_scale_range_and_matches_the_host_draws():
    size, n, scale = 32, 256, (0.08, 1.0)
    images = _coordinate_images(n, size)
    device_views = _numpy_views(
        augmenting_model(_crop_only(scale, size, seed=11), size=size), images
    )
    areas = _area_fractions(np.concatenate(list(device_views.values())), size)
    # Rounding the box to whole pixels moves an area by at most ~2/size.
    assert areas.min() > scale[0] - 0.03 and areas.max() <= 1.0 + 1e-6
    assert areas.min() < 0.2 and areas.max() > 0.9  # the whole range is reached
    host = kps.data.ssl_dataset(
        images, views="two", augment=_crop_only(scale, size, seed=11), batch_size=n, seed=1
    )
    batch = next(iter(host))
    host_areas = _area_fractions(
        np.concatenate([np.asarray(batch["view1"]), np.asarray(batch["view2"])]), size
    )
    # Means of 512 draws of a spread ~0.26: standard error ~0.012 each.
    assert abs(areas.mean() - host_areas.mean()) < 0.05
    assert abs(np.median(areas) - np.median(host_areas)) < 0.07
    # Narrow scale range: the areas follow it.
    narrow = _numpy_views(augmenting_model(_crop_only((0.5, 0.6), size, seed=2), size=size), images)
    narrow_areas = _area_fractions(narrow["view1"], size)
    assert narrow_areas.min() > 0.45 and narrow_areas.max() < 0.66


def _brightness_factors(views, level):
    # Constant grey images: contrast, saturation, hue and grayscale keep them;
    # brightness scales them by its factor.
    return views.reshape(len(views), -1).mean(axis=1) / level


def test_jitter_factors_follow_the_preset_and_match_the_host_draws():
    n, size, value = 512, 8, 64
    images = np.full((n, size, size, 3), value, dtype=np.uint8)
    level = value / 255.0
    recipe = kps.augment.RECIPES["cifar"]
    low, high = 1 - recipe["jitter"]["brightness"], 1 + recipe["jitter"]["brightness"]
    model = augmenting_model(
        kps.augment.preset("cifar", image_size=size, target=None, seed=7), size
    )
    device = _brightness_factors(_numpy_views(model, images)["view1"], level)
    host_dataset = kps.data.ssl_dataset(
        images,
        views="two",
        augment=kps.augment.preset("cifar", image_size=size, target=None, seed=7),
        batch_size=n,
        seed=1,
    )
    host = _brightness_factors(np.asarray(next(iter(host_dataset))["view1"]), level)
    for factors in (device, host):
        assert factors.min() >= low - 1e-3 and factors.max() <= high + 1e-3
        assert factors.min() < low + 0.05 and factors.max() > high - 0.05
        jittered = np.abs(factors - 1.0) > 1e-3
        # Applied with probability 0.8 (512 images: standard error 0.018).
        assert abs(jittered.mean() - recipe["jitter_p"]) < 0.07
        # Among jittered images the factor is U(0.6, 1.4): mean 1, sd 0.231.
        assert abs(factors[jittered].mean() - 1.0) < 0.04
        assert abs(factors[jittered].std() - 0.8 / np.sqrt(12)) < 0.03
    assert abs(np.mean(device) - np.mean(host)) < 0.04


def test_pid_target_view_is_the_preset_target_pipeline():
    images = uint8_images(n=6, size=12)
    clean = _numpy_views(_pid_model("cifar", size=16), images)["target"]
    expected = kps.augment.target_pipeline("clean", image_size=16)(images / np.float32(255.0))
    np.testing.assert_allclose(clean, keras.ops.convert_to_numpy(expected), atol=1e-5)
    same_size = _numpy_views(_pid_model("cifar", size=12), images)["target"]
    np.testing.assert_allclose(same_size, images / 255.0, atol=1e-6)

    weak_views = kps.augment.preset("cifar", image_size=12, target="weak", seed=2)
    images = uint8_images(n=64, size=12)
    weak = _numpy_views(_pid_model(weak_views, size=12), images)["target"]
    floats = images / 255.0
    flipped = np.all(np.isclose(weak, floats[:, :, ::-1], atol=1e-6), axis=(1, 2, 3))
    same = np.all(np.isclose(weak, floats, atol=1e-6), axis=(1, 2, 3))
    assert np.all(flipped | same) and 16 < flipped.sum() < 48


def test_pseudo_label_model_draws_two_views_and_keeps_the_labels():
    model = kps.models.PseudoLabelPIDModel(
        tiny_encoder(16, 3), tiny_projector(), num_clusters=3, augment="cifar"
    )
    assert model.augment.target is None
    assert model.view_keys == ("images", "label")
    model.compile(optimizer="adam", jit_compile=JIT)
    batch = {"images": uint8_images(n=16), "label": np.arange(16, dtype="int32") % 3}
    history = model.fit(batch, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    assert np.isfinite(history["loss"][0])


@pytest.mark.parametrize("kind", ["ssl", "pid"])
def test_two_step_fit_runs_compiled_and_counts_its_steps(kind):
    model = augmenting_model("cifar") if kind == "ssl" else _pid_model("cifar", target_momentum=0.5)
    model.compile(optimizer="adam", jit_compile=JIT)
    dataset = kps.data.ssl_dataset(uint8_images(n=16), views="images", batch_size=8, seed=0)
    batch = next(iter(dataset))
    assert set(batch) == {"images"} and batch["images"].dtype.name == "uint8"
    history = model.fit(dataset, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert int(keras.ops.convert_to_numpy(model.augment_step.value)) == 2


def test_images_dataset_carries_pseudo_labels():
    import tensorflow as tf

    images = uint8_images(n=12)
    labels = tf.Variable(np.arange(12, dtype="int32") * 7)
    dataset = kps.data.ssl_dataset(
        images, views="images", batch_size=4, shuffle=False, pseudo_labels=labels
    )
    batch = next(iter(dataset))
    np.testing.assert_array_equal(batch["images"].numpy(), images[:4])
    np.testing.assert_array_equal(batch["label"].numpy(), np.arange(4) * 7)


def test_resumed_fit_draws_the_views_of_an_uninterrupted_one(tmp_path):
    images = uint8_images(n=16, size=16)

    def run(epochs, backup_dir, seed=9):
        keras.utils.set_random_seed(0)
        model = _pid_model(kps.augment.preset("cifar", image_size=16, seed=seed))
        model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=JIT)
        model.fit(
            {"images": images},
            batch_size=8,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=[kps.callbacks.ResumableBackup(backup_dir)],
        )
        return model

    uninterrupted = run(2, tmp_path / "a")
    run(1, tmp_path / "b")
    resumed = run(2, tmp_path / "b")  # loads epoch 1's backup, trains epoch 2
    assert int(keras.ops.convert_to_numpy(resumed.augment_step.value)) == 4
    for a, b in zip(uninterrupted.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-5
        )
    next_a = _numpy_views(uninterrupted, images[:4])
    next_b = _numpy_views(resumed, images[:4])
    np.testing.assert_allclose(next_a["view1"], next_b["view1"], atol=1e-6)


def test_inference_is_not_augmented():
    images = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype("float32")
    model = augmenting_model("cifar")
    expected = model.projector(model.encoder(images, training=False), training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(images, training=False)),
        keras.ops.convert_to_numpy(expected),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        model.predict(images, verbose=0), keras.ops.convert_to_numpy(expected), atol=1e-5
    )


def test_config_round_trips_a_preset_name_and_a_layer(tmp_path):
    model = _pid_model("grayscale", size=16, channels=1)
    config = model.get_config()
    assert config["augment"] == "grayscale"
    clone = kps.PIDModel.from_config(config)
    assert isinstance(clone.augment, kps.augment.Views)
    assert clone.augment.view1.name == "grayscale_view1" and clone.augment.target is not None

    layer = kps.augment.RandomResizedCrop(16, scale=(0.3, 0.9), seed=4)
    model = augmenting_model(layer)
    clone = kps.SSLModel.from_config(model.get_config())
    crop = clone.augment.view1
    assert isinstance(crop, kps.augment.RandomResizedCrop) and crop.scale == (0.3, 0.9)
    # One layer for both views stays one layer: the views still differ.
    assert clone.augment.view1 is clone.augment.view2
    views = _numpy_views(clone, uint8_images(n=4))
    assert not np.allclose(views["view1"], views["view2"])

    plain = augmenting_model(None)
    assert plain.get_config()["augment"] is None and plain.augment is None
    path = os.path.join(tmp_path, "model.keras")
    augmenting_model("cifar").save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config()["augment"] == "cifar"


def test_refuses_an_unknown_preset_and_a_non_layer():
    with pytest.raises(ValueError, match="Unknown augmentation preset 'cifar100'"):
        augmenting_model("cifar100")
    with pytest.raises(ValueError, match="`augment` must be a preset name"):
        augmenting_model(3)


def test_fit_refuses_float_images_outside_the_unit_interval():
    model = augmenting_model("cifar")
    model.compile(optimizer="adam")
    images = uint8_images(n=8).astype("float32")
    with pytest.raises(ValueError, match="divide by 255"):
        model.fit({"images": images}, batch_size=4, epochs=1, verbose=0)
