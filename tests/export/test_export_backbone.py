"""export_backbone: the SavedModel endpoints and the ONNX file against the Keras encoder.

The reference is the Keras encoder itself in inference mode (batch norm on its
moving statistics), evaluated in this process; the exported artifacts are
reloaded without any keras_pid_ssl code. Tolerances: rtol=1e-4, atol=1e-5 on
features of magnitude ~1 (float32 graphs that reorder the same operations).
"""

import importlib.util
import os

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import requires_tensorflow

IMAGE_SHAPE = (8, 8, 3)
FEATURE_DIM = 6
RTOL, ATOL = 1e-4, 1e-5


def make_trained_looking_encoder():
    """A small encoder whose batch-norm statistics are not the defaults, so
    the export must use inference-mode batch norm to match."""
    encoder = kps.backbones.SmallConvNet(input_shape=IMAGE_SHAPE, widths=(4, FEATURE_DIM))
    rng = np.random.default_rng(0)
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            width = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=width).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=width).astype("float32"))
    return encoder


def keras_features(encoder, images):
    return keras.ops.convert_to_numpy(encoder(images, training=False))


def uint8_and_float_images(batch, seed):
    """The same pixels as uint8 in [0, 255] and as float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    uint8_images = rng.integers(0, 256, size=(batch,) + IMAGE_SHAPE).astype("uint8")
    # Both extremes of the range are valid pixels.
    uint8_images[0, 0, 0] = (0, 255, 0)
    return uint8_images, uint8_images.astype("float32") / 255.0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One SavedModel (exported from an SSLModel) and its reference features."""
    import tensorflow as tf

    encoder = make_trained_looking_encoder()
    model = kps.SSLModel(
        encoder,
        kps.heads.Projector(hidden_dims=(8,), output_dim=8),
        loss=kps.losses.BarlowTwinsLoss(),
    )
    folder = tmp_path_factory.mktemp("export") / "backbone"
    path = kps.export_backbone(model, folder)
    assert path == str(folder)
    uint8_images, float_images = uint8_and_float_images(5, seed=1)
    return {
        "loaded": tf.saved_model.load(path),
        "uint8_images": uint8_images,
        "float_images": float_images,
        "expected": keras_features(encoder, float_images),
    }


def test_saved_model_endpoints_match_the_keras_encoder(exported):
    import tensorflow as tf

    loaded, expected = exported["loaded"], exported["expected"]
    float_images, uint8_images = exported["float_images"], exported["uint8_images"]
    assert expected.shape == (5, FEATURE_DIM)
    for images in (float_images, tf.constant(float_images), float_images.astype("float64")):
        np.testing.assert_allclose(np.asarray(loaded.serve(images)), expected, rtol=RTOL, atol=ATOL)
    for images in (uint8_images, tf.constant(uint8_images)):
        np.testing.assert_allclose(
            np.asarray(loaded.serve_uint8(images)), expected, rtol=RTOL, atol=ATOL
        )
    # Any batch size, including one image.
    np.testing.assert_allclose(
        np.asarray(loaded.serve(float_images[:1])), expected[:1], rtol=RTOL, atol=ATOL
    )


def test_saved_model_signatures_are_float32_serve_and_uint8_serve_uint8(exported):
    """What TensorFlow Serving sees: `serving_default` is the checked float `serve`."""
    import tensorflow as tf

    loaded = exported["loaded"]
    assert set(loaded.signatures) == {"serve", "serve_uint8", "serving_default"}
    batch_shape = [None, *IMAGE_SHAPE]
    for name, dtype in (
        ("serve", tf.float32),
        ("serving_default", tf.float32),
        ("serve_uint8", tf.uint8),
    ):
        _, inputs = loaded.signatures[name].structured_input_signature
        assert list(inputs) == ["images"], name
        assert inputs["images"].dtype == dtype, name
        assert inputs["images"].shape.as_list() == batch_shape, name
    (output,) = loaded.signatures["serving_default"](
        images=tf.constant(exported["float_images"])
    ).values()
    np.testing.assert_allclose(output.numpy(), exported["expected"], rtol=RTOL, atol=ATOL)
    (output,) = loaded.signatures["serve_uint8"](
        images=tf.constant(exported["uint8_images"])
    ).values()
    np.testing.assert_allclose(output.numpy(), exported["expected"], rtol=RTOL, atol=ATOL)
    # The signature checks the range too.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"got values in \[0, 255\]"):
        loaded.signatures["serving_default"](
            images=tf.constant(exported["uint8_images"].astype("float32"))
        )


def test_serve_refuses_integer_images_and_names_serve_uint8(exported):
    import tensorflow as tf

    loaded, uint8_images = exported["loaded"], exported["uint8_images"]
    for dtype, images in (
        ("uint8", uint8_images),
        ("uint8", tf.constant(uint8_images)),
        ("int64", uint8_images.astype("int64")),
    ):
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=rf"serve got {dtype} images; it takes float32 images with values in "
            r"\[0, 1\]\. Pass uint8 pixels in \[0, 255\] to serve_uint8",
        ):
            loaded.serve(images)


def test_serve_refuses_floats_outside_zero_one(exported):
    import tensorflow as tf

    loaded, float_images = exported["loaded"], exported["float_images"]
    # 0-255 floats: the mistake that used to give features off by hundreds.
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"serve takes float images with values in \[0, 1\]; got values in "
        r"\[0, 255\]\. Pass raw 0-255 pixels as uint8 to serve_uint8",
    ):
        loaded.serve(float_images * 255.0)
    slightly_off = [float_images - 0.01, float_images + 0.01]
    nan_pixel = float_images.copy()
    nan_pixel[2, 3, 4, 1] = np.nan
    for images in slightly_off + [nan_pixel, float_images.astype("float64") * 1.5]:
        with pytest.raises(tf.errors.InvalidArgumentError, match="serve takes float images"):
            loaded.serve(images)
    # The bounds themselves are valid: all-black and all-white images.
    for value in (0.0, 1.0):
        images = np.full((2,) + IMAGE_SHAPE, value, dtype="float32")
        assert np.isfinite(np.asarray(loaded.serve(images))).all()


def test_serve_uint8_refuses_floats_and_other_integers(exported):
    import tensorflow as tf

    loaded, float_images = exported["loaded"], exported["float_images"]
    for dtype, images in (
        ("float32", float_images),
        ("float32", tf.constant(float_images)),
        ("float64", float_images.astype("float64")),
    ):
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=rf"serve_uint8 got {dtype} images; it takes uint8 images with values in "
            r"\[0, 255\]\. Pass float images in \[0, 1\] to serve\.",
        ):
            loaded.serve_uint8(images)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"serve_uint8 got int32 images; .* Cast pixels in \[0, 255\] to uint8 first",
    ):
        loaded.serve_uint8(exported["uint8_images"].astype("int32"))


def test_exotic_dtypes_are_refused_with_the_accepted_specs(exported):
    loaded = exported["loaded"]
    with pytest.raises(ValueError, match="Could not find matching concrete function"):
        loaded.serve(exported["uint8_images"] > 127)


@requires_tensorflow  # Keras 3.15's TFSMLayer is TensorFlow-only.
def test_saved_model_of_a_plain_keras_model_reloads_as_tfsm_layer(tmp_path):
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.Conv2D(5, 3)(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    encoder = keras.Model(inputs, outputs)
    path = kps.export_backbone(encoder, os.fspath(tmp_path / "plain"))
    images = np.random.default_rng(2).uniform(size=(3,) + IMAGE_SHAPE).astype("float32")
    layer = keras.layers.TFSMLayer(path, call_endpoint="serve")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(images)),
        keras_features(encoder, images),
        rtol=RTOL,
        atol=ATOL,
    )


# What export_backbone(format="onnx") needs per backend (Keras 3.15's exporters:
# tf2onnx on TensorFlow, jax2onnx on JAX, torch.onnx's TorchScript exporter on
# torch, which the dynamic batch dimension selects), plus onnxruntime to run it.
ONNX_EXPORT_REQUIREMENTS = {
    "tensorflow": ("tf2onnx", "onnx"),
    "jax": ("jax2onnx", "onnx"),
    "torch": ("onnx",),
}


def test_onnx_export_matches_keras(tmp_path):
    backend = keras.backend.backend()
    needed = ONNX_EXPORT_REQUIREMENTS[backend] + ("onnxruntime",)
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(
            f"ONNX round trip on {backend} needs {', '.join(needed)}; not installed: "
            f"{', '.join(missing)} (`pip install -e '.[dev]'` brings them)"
        )
    import onnxruntime

    encoder = make_trained_looking_encoder()
    path = os.fspath(tmp_path / "backbone.onnx")
    assert kps.export_backbone(encoder, path, format="onnx") == path
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (onnx_input,) = session.get_inputs()
    assert onnx_input.name == "images"
    assert onnx_input.type == "tensor(float)"
    assert list(onnx_input.shape[1:]) == list(IMAGE_SHAPE)
    assert not isinstance(onnx_input.shape[0], int)  # a free batch dimension
    for batch, seed in ((1, 3), (5, 4)):
        _, images = uint8_and_float_images(batch, seed)
        (output,) = session.run(None, {"images": images})
        assert output.shape == (batch, FEATURE_DIM)
        np.testing.assert_allclose(output, keras_features(encoder, images), rtol=RTOL, atol=ATOL)


def test_onnx_export_names_the_missing_packages(tmp_path, monkeypatch):
    backend = keras.backend.backend()
    required = ONNX_EXPORT_REQUIREMENTS[backend]
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == required[0] else find_spec(name, *args),
    )
    with pytest.raises(
        ImportError,
        match=rf"on the {backend} backend needs {', '.join(required)}; missing: "
        rf"{required[0]}\. Install with `pip install {' '.join(required)}`",
    ):
        kps.export_backbone(
            make_trained_looking_encoder(), tmp_path / "backbone.onnx", format="onnx"
        )
    assert not (tmp_path / "backbone.onnx").exists()


def test_export_backbone_rejects_bad_arguments(tmp_path):
    encoder = make_trained_looking_encoder()
    with pytest.raises(ValueError, match="format"):
        kps.export_backbone(encoder, tmp_path / "x", format="tflite")
    with pytest.raises(ValueError, match="model_or_encoder"):
        kps.export_backbone("not a model", tmp_path / "x")
    with pytest.raises(ValueError, match="input_shape"):
        kps.export_backbone(encoder, tmp_path / "x", input_shape=(8, 8))
