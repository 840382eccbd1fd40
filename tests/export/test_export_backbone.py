import importlib.util
import os

import keras
import numpy as np
import pytest
from conftest import requires_tensorflow

import keras_pid_ssl as kps

IMAGE_SHAPE = (8, 8, 3)


def make_trained_looking_encoder():
    """A small encoder whose batch-norm statistics are not the defaults, so
    the export must use inference-mode batch norm to match."""
    encoder = kps.backbones.SmallConvNet(input_shape=IMAGE_SHAPE, widths=(4, 6))
    rng = np.random.default_rng(0)
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            width = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=width).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=width).astype("float32"))
    return encoder


def keras_features(encoder, images):
    return keras.ops.convert_to_numpy(encoder(images, training=False))


def test_saved_model_endpoints_match_the_keras_encoder(tmp_path):
    import tensorflow as tf

    encoder = make_trained_looking_encoder()
    model = kps.SSLModel(
        encoder,
        kps.heads.Projector(hidden_dims=(8,), output_dim=8),
        loss=kps.losses.BarlowTwinsLoss(),
    )
    path = kps.export_backbone(model, tmp_path / "backbone")
    assert path == str(tmp_path / "backbone")

    rng = np.random.default_rng(1)
    uint8_images = rng.integers(0, 256, size=(5,) + IMAGE_SHAPE).astype("uint8")
    float_images = uint8_images.astype("float32") / 255.0
    expected = keras_features(encoder, float_images)

    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(
        loaded.serve(tf.constant(float_images)).numpy(), expected, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        loaded.serve_uint8(tf.constant(uint8_images)).numpy(), expected, rtol=1e-4, atol=1e-5
    )
    # The signatures TensorFlow Serving sees: float serve is the default.
    assert {"serve", "serve_uint8", "serving_default"} <= set(loaded.signatures)
    (output,) = loaded.signatures["serving_default"](images=tf.constant(float_images)).values()
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-4, atol=1e-5)
    # Any batch size.
    assert loaded.serve(tf.constant(float_images[:1])).shape == (1, 6)


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
        rtol=1e-4,
        atol=1e-5,
    )


def onnx_requirements():
    return {"tensorflow": ("tf2onnx", "onnx"), "jax": ("jax2onnx", "onnx"), "torch": ("onnx",)}[
        keras.backend.backend()
    ]


def test_onnx_export_matches_keras_or_names_the_missing_packages(tmp_path):
    encoder = make_trained_looking_encoder()
    path = os.fspath(tmp_path / "backbone.onnx")
    missing = [m for m in onnx_requirements() if importlib.util.find_spec(m) is None]
    if missing:
        with pytest.raises(ImportError, match=f"pip install {' '.join(onnx_requirements())}"):
            kps.export_backbone(encoder, path, format="onnx")
        return
    kps.export_backbone(encoder, path, format="onnx")
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(path)
    images = np.random.default_rng(3).uniform(size=(4,) + IMAGE_SHAPE).astype("float32")
    (output,) = session.run(None, {session.get_inputs()[0].name: images})
    np.testing.assert_allclose(output, keras_features(encoder, images), rtol=1e-4, atol=1e-5)


def test_export_backbone_rejects_bad_arguments(tmp_path):
    encoder = make_trained_looking_encoder()
    with pytest.raises(ValueError, match="format"):
        kps.export_backbone(encoder, tmp_path / "x", format="tflite")
    with pytest.raises(ValueError, match="model_or_encoder"):
        kps.export_backbone("not a model", tmp_path / "x")
    with pytest.raises(ValueError, match="input_shape"):
        kps.export_backbone(encoder, tmp_path / "x", input_shape=(8, 8))
