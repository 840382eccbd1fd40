"""SSLModel: trains through the stock fit on every backend, saves, validates."""

import os

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch
from conftest import view_dataset


def _model(loss=None):
    return kps.SSLModel(tiny_encoder(), tiny_projector(), loss=loss or kps.losses.BarlowTwinsLoss())


@pytest.mark.parametrize("loss_cls", [kps.losses.BarlowTwinsLoss, kps.losses.VICRegLoss])
def test_fit_decreases_the_loss_and_reports_every_term(loss_cls):
    v1, v2 = make_views(n=64)
    model = _model(loss_cls())
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(
        view_batch(v1, v2), batch_size=16, epochs=5, shuffle=False, verbose=0
    ).history
    assert history["loss"][-1] < history["loss"][0]
    for name in model.ssl_loss.term_names:
        assert len(history[name]) == 5
    # The reported terms add up to the reported loss (same batches, epoch means).
    total = sum(np.asarray(history[name]) for name in model.ssl_loss.term_names)
    np.testing.assert_allclose(total, history["loss"], rtol=1e-4)


def test_evaluate_matches_the_loss_on_the_same_data():
    v1, v2 = make_views(n=16)
    model = _model()
    model.compile(optimizer="adam")
    result = model.evaluate(view_batch(v1, v2), batch_size=16, verbose=0, return_dict=True)
    z1 = model.predict(v1, verbose=0)
    z2 = model.predict(v2, verbose=0)
    # An independent NumPy Barlow Twins (lambda 5e-3, the default).
    c = _standardize(z1).T @ _standardize(z2) / len(z1)
    expected = np.sum((1 - np.diag(c)) ** 2) + 5e-3 * np.sum((c - np.diag(np.diag(c))) ** 2)
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-3)
    np.testing.assert_allclose(result["loss"], float(model.ssl_loss(z1, z2)), rtol=1e-4)


def _standardize(z):
    z = z.astype("float64")
    return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)


def test_save_and_load_round_trip_gives_identical_embeddings(tmp_path):
    v1, v2 = make_views(n=32)
    model = _model(kps.losses.VICRegLoss(invariance_weight=10.0))
    model.compile(optimizer="adam")
    model.fit(view_batch(v1, v2), batch_size=16, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, kps.SSLModel)
    assert restored.ssl_loss.invariance_weight == 10.0
    np.testing.assert_array_equal(model.predict(v1, verbose=0), restored.predict(v1, verbose=0))
    np.testing.assert_array_equal(
        model.encoder.predict(v1, verbose=0), restored.encoder.predict(v1, verbose=0)
    )


def test_encoder_is_the_backbone_features():
    v1, _ = make_views(n=8)
    model = _model()
    features = model.encoder.predict(v1, verbose=0)
    assert features.shape == (8, 8)
    np.testing.assert_allclose(
        model.predict(v1, verbose=0),
        keras.ops.convert_to_numpy(model.projector(features, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_views_of_different_shapes_are_rejected():
    v1, _ = make_views(n=16, size=8)
    _, v2 = make_views(n=16, size=6)
    model = _model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="same shape"):
        model(view_batch(v1, v2))


def test_batch_of_one_is_rejected():
    v1, v2 = make_views(n=1)
    model = _model()
    with pytest.raises(ValueError, match="batch_size >= 2"):
        model(view_batch(v1, v2))


def test_non_4d_images_are_rejected():
    v1, v2 = make_views(n=4)
    model = _model()
    with pytest.raises(ValueError, match=r"\(batch_size, height, width, channels\)"):
        model(v1[..., 0])


def test_single_view_batches_are_rejected():
    v1, _ = make_views(n=4)
    model = _model()
    with pytest.raises(ValueError, match=r"keys \['view1', 'view2'\].*missing \['view2'\]"):
        model({"view1": v1})
    model.compile(optimizer="adam")
    free = kps.SSLModel(
        tiny_encoder(), tiny_projector(), kps.losses.BarlowTwinsLoss(), input_range=None
    )
    free.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"dataset of dicts of views with keys \['view1'"):
        free.fit(view_dataset(v1, v1, batch_size=2).map(lambda b: (b["view1"], b["view2"])))
    with pytest.raises(ValueError, match="dicts of views"):
        model.fit(
            view_dataset(v1, v1, batch_size=2).map(lambda b: (b["view1"], b["view2"])), verbose=0
        )
    with pytest.raises(ValueError, match="no `y`"):
        model.fit(v1, v1, verbose=0)


def test_constructor_rejects_a_non_ssl_loss():
    with pytest.raises(ValueError, match="loss"):
        kps.SSLModel(tiny_encoder(), tiny_projector(), loss="mse")


def test_views_with_other_channels_than_the_encoder_are_named():
    v1, v2 = make_views(n=16, channels=3)  # the tiny encoder takes 1 channel
    model = _model()
    model.compile(optimizer="adam")
    message = r"encoder takes images with 1 channel\(s\) .* the views have 3"
    with pytest.raises(ValueError, match=message):
        model.fit(view_batch(v1, v2), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        _model().predict(v1, verbose=0)


def test_fit_rejects_images_outside_the_expected_range():
    v1, v2 = make_views(n=16)
    model = _model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"values in \[.*\] \(0-255 pixels\? divide by 255\)"):
        model.fit(view_batch(v1 * 255.0, v2 * 255.0), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="dtype uint8"):
        model.fit(view_batch((v1 * 255).astype("uint8"), v2), epochs=1, verbose=0)
    nan = v1.copy()
    nan[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="finite pixel values; view 'view1' holds 1 NaN"):
        model.fit(view_batch(nan, v2), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="empty view"):
        model.fit(view_batch(v1[:0], v2[:0]), epochs=1, verbose=0)
    dataset = view_dataset(v1 - 0.5, v2, batch_size=8)
    with pytest.raises(ValueError, match="input_range=None"):
        model.fit(dataset, epochs=1, verbose=0)
    # Inputs normalised otherwise train once the check is turned off.
    free = kps.SSLModel(
        tiny_encoder(), tiny_projector(), kps.losses.BarlowTwinsLoss(), input_range=None
    )
    free.compile(optimizer="adam")
    free.fit(dataset, epochs=1, verbose=0)


def test_bf16_mixed_precision_fit_gives_finite_float32_losses():
    v1, v2, t = make_views(n=32, num_views=3)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = kps.PIDModel(
            tiny_encoder(), tiny_projector(), loss=kps.losses.PIDLoss(w_red=0.1, w_joint=0.1)
        )
        model.compile(optimizer="adam")
        assert keras.backend.standardize_dtype(model(v1).dtype) == "bfloat16"
        history = model.fit(view_batch(v1, v2, t), batch_size=16, epochs=2, verbose=0).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for name in ("loss", "synergy", "redundancy", "i12", "pid_grad_ratio"):
        assert np.all(np.isfinite(history[name])), name
    z = model(v1)
    assert keras.backend.standardize_dtype(model.ssl_loss(z, z, z).dtype) == "float32"
    # The loss and the PID estimator compute in float32 from the bf16
    # embeddings: the same value as on those embeddings cast to float32 (a
    # bf16 computation is off by ~1e-2), and its terms are float32 too.
    z1, z2, zt = (model(v) for v in (v1, v2, t))
    assert keras.backend.standardize_dtype(z1.dtype) == "bfloat16"
    z32 = [keras.ops.cast(x, "float32") for x in (z1, z2, zt)]
    for estimator in ("diagonal", "full"):
        loss = kps.losses.PIDLoss(w_red=0.1, w_joint=0.1, estimator=estimator)
        value, value32 = loss(z1, z2, zt), loss(*z32)
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(value), keras.ops.convert_to_numpy(value32), rtol=1e-6
        )
