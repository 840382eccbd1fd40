"""Export a trained backbone for inference: TensorFlow SavedModel or ONNX.

The input contract of every exported artifact:

- images are NHWC, `(batch, height, width, channels)`, with the height, width
  and channels the encoder was built for (the batch size is free);
- the float entry point takes float32 pixels in [0, 1] (the library's
  convention, what `kps.data` feeds the encoder);
- the uint8 entry point (SavedModel only) takes raw uint8 pixels in [0, 255],
  e.g. a decoded PNG or JPEG, and divides them by 255 before the encoder;
- both return the encoder's pooled features, float32 `(batch, feature_dim)`,
  computed in inference mode (batch norm uses its moving statistics).

A SavedModel folder holds two endpoints, also exported as signatures:

- `serve` (= `serving_default`): float32 images in [0, 1] -> features;
- `serve_uint8`: uint8 images in [0, 255] -> the same features.

Both endpoints check their input and raise `tf.errors.InvalidArgumentError`
with a message naming the endpoint, what it got and what it expects:

- `serve` takes float16/32/64 images (computed in float32) and refuses
  integer images (uint8 pixels belong to `serve_uint8`) and floats outside
  [0, 1] or NaN (0-255 floats would give features off by hundreds);
- `serve_uint8` takes uint8 only and refuses floats (which it would otherwise
  truncate to 0 and 1) and other integer dtypes.

A NumPy array is dispatched on its dtype, so `serve(uint8_array)` is refused
rather than silently read as floats in [0, 255]. Other dtypes (bool, bfloat16)
get TensorFlow's "Could not find matching concrete function" error, which
lists the accepted ones. The signatures TensorFlow Serving sees are float32
(`serve`, `serving_default`, with the range check) and uint8 (`serve_uint8`).

```python
import tensorflow as tf
backbone = tf.saved_model.load("export/backbone")
features = backbone.serve(images_float01)          # or
features = backbone.serve_uint8(images_uint8)
```

On the TensorFlow backend, `keras.layers.TFSMLayer("export/backbone",
call_endpoint="serve")` wraps it as a Keras layer (Keras 3.15's TFSMLayer is
TensorFlow-only; from JAX or PyTorch, call `tf.saved_model.load` and convert
the outputs to NumPy).
"""

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile

import keras
from keras import ops

from keras_pid_ssl.models.ssl_model import SSLModel

SERVE_ENDPOINT = "serve"
SERVE_UINT8_ENDPOINT = "serve_uint8"
FORMATS = ("tf_saved_model", "onnx")
# Input dtypes the SavedModel endpoints are traced for: `serve` computes on the
# float ones and refuses the integer ones with an error naming `serve_uint8`;
# `serve_uint8` computes on uint8 and refuses the rest. Other dtypes (bool,
# bfloat16, ...) match no trace and TensorFlow lists the accepted ones.
FLOAT_DTYPES = ("float16", "float32", "float64")
INTEGER_DTYPES = ("uint8", "int8", "uint16", "int16", "int32", "int64")
_ONNX_REQUIREMENTS = {
    "tensorflow": ("tf2onnx", "onnx"),
    "jax": ("jax2onnx", "onnx"),
    "torch": ("onnx",),
}


def export_backbone(
    model_or_encoder, path, format="tf_saved_model", input_shape=None, verbose=False
):
    """Writes the backbone of an SSL model as a standalone inference artifact.

    `format="tf_saved_model"` writes a SavedModel folder with two endpoints
    (see the module docstring for the input contract): `serve` takes float32
    images in [0, 1], `serve_uint8` takes uint8 images in [0, 255]; both
    return float32 features, and both refuse images of the other kind or
    out of range with an error naming the right endpoint. It needs no Python code of this library to
    reload: `tf.saved_model.load(path)`, TensorFlow Serving, or (TensorFlow
    backend) `keras.layers.TFSMLayer(path, call_endpoint="serve")`.

    On TensorFlow and JAX the export uses Keras's own `ExportArchive` (JAX
    through `jax2tf`). Keras 3's SavedModel export from PyTorch needs
    `torch_xla` and fails on CPU builds of torch, so on the torch backend the
    encoder is saved as a `.keras` file and re-exported by a TensorFlow-backend
    Python subprocess (same weights; the encoder must be made of Keras and
    keras_pid_ssl layers, which that subprocess can rebuild).

    `format="onnx"` writes one `.onnx` file with Keras's `model.export`; its
    single input `images` takes float32 images in [0, 1] (ONNX Runtime refuses
    other dtypes; the graph holds no range check). It needs optional
    packages: `tf2onnx` and `onnx` on TensorFlow, `jax2onnx` on JAX, `onnx`
    on PyTorch (an `ImportError` names what to install). Load it with e.g.
    `onnxruntime.InferenceSession(path)`.

    Args:
        model_or_encoder: a `kps.SSLModel` / `kps.PIDModel` (its `.encoder`
            is exported) or a Keras model mapping images to features.
        path: output folder (SavedModel) or file (ONNX, e.g. `"backbone.onnx"`).
        format: `"tf_saved_model"` or `"onnx"`.
        input_shape: `(height, width, channels)` of the images; read from the
            encoder when omitted (needed only for encoders without a defined
            input, e.g. subclassed layers).
        verbose: print Keras's export messages and the INFO log lines of
            absl and TensorFlow while exporting (hidden otherwise; warnings
            always show).

    Returns:
        `path`, as a string.

    Example:

    ```python
    import keras_pid_ssl as kps
    model = kps.SSLModel(encoder, projector, loss=kps.losses.BarlowTwinsLoss())
    model.fit(two_view_dataset, epochs=100)
    kps.export_backbone(model, "runs/exp1/backbone")

    import tensorflow as tf
    backbone = tf.saved_model.load("runs/exp1/backbone")
    features = backbone.serve_uint8(uint8_images)  # (batch, feature_dim)
    ```
    """
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}. Received: format={format!r}")
    path = os.fspath(path)
    encoder = _resolve_encoder(model_or_encoder)
    image_shape = _resolve_image_shape(encoder, input_shape)
    backend = keras.backend.backend()
    if format == "onnx":
        with _quiet_info_logs(verbose):
            _export_onnx(encoder, path, image_shape, verbose)
    elif backend in ("tensorflow", "jax"):
        with _quiet_info_logs(verbose):
            _export_saved_model(encoder, path, image_shape, verbose)
    elif backend == "torch":
        _export_saved_model_through_tensorflow(encoder, path, image_shape, verbose)
    else:
        raise NotImplementedError(
            "export_backbone(format='tf_saved_model') supports the TensorFlow, "
            f"JAX and PyTorch backends. Current backend: {keras.backend.backend()}"
        )
    return path


@contextlib.contextmanager
def _quiet_info_logs(verbose):
    """Hides the export's INFO log lines unless `verbose`; warnings still show.

    Writing a SavedModel logs at INFO level through absl (input renaming,
    sharding callback durations, the fingerprint file) and TensorFlow's
    logger; a program that set absl's verbosity to INFO, as `absl.app`
    does, would print them. absl's verbosity is lowered through absl's own
    API, since TensorFlow's checkpoint code sets and restores it while
    saving (which would undo a level set on the `absl` Python logger).
    """
    if verbose:
        yield
        return
    try:
        from absl import logging as absl_logging
    except ImportError:  # absl comes with TensorFlow; without it, nothing to hide
        absl_logging = None
    tf_logger = logging.getLogger("tensorflow")
    tf_level = tf_logger.level
    tf_logger.setLevel(max(tf_logger.getEffectiveLevel(), logging.WARNING))
    absl_verbosity = None if absl_logging is None else absl_logging.get_verbosity()
    if absl_verbosity is not None and absl_verbosity > absl_logging.WARNING:
        absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        yield
    finally:
        tf_logger.setLevel(tf_level)
        if absl_verbosity is not None:
            absl_logging.set_verbosity(absl_verbosity)


def _resolve_encoder(model_or_encoder):
    if isinstance(model_or_encoder, SSLModel):
        return model_or_encoder.encoder
    if isinstance(model_or_encoder, keras.layers.Layer):
        return model_or_encoder
    raise ValueError(
        "`model_or_encoder` must be a kps.SSLModel / kps.PIDModel or a Keras "
        f"model mapping images to features. Received: {model_or_encoder!r}"
    )


def _resolve_image_shape(encoder, input_shape):
    if input_shape is None:
        encoder_input = getattr(encoder, "input_shape", None)
        if encoder_input is None:
            raise ValueError(
                "Could not read the image shape from the encoder; pass "
                "`input_shape=(height, width, channels)`."
            )
        input_shape = encoder_input[1:]
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels) and the encoder "
            f"must take one NHWC image tensor. Received: input_shape={input_shape}"
        )
    if not encoder.built:
        encoder.build((None,) + input_shape)
    return input_shape


def _export_saved_model(encoder, path, image_shape, verbose):
    import tensorflow as tf

    batch_shape = (None,) + image_shape
    # The encoder as a TensorFlow function of float32 images (through jax2tf on
    # JAX). It comes from a second archive that is never written, so the
    # artifact holds no unchecked endpoint: callers reach the encoder only
    # through `serve` and `serve_uint8` below, which check their input first.
    converter = keras.export.ExportArchive()
    converter.track(encoder)
    features = converter.add_endpoint(
        "features",
        lambda images: ops.cast(encoder(images, training=False), "float32"),
        input_signature=[keras.InputSpec(shape=batch_shape, dtype="float32")],
    )

    # A NumPy array given to a restored function is converted to the dtype of
    # the matching trace, so with one float32 trace uint8 pixels would be read
    # as floats in [0, 255], and with one uint8 trace floats in [0, 1] would be
    # truncated to 0. Each endpoint is therefore traced for every common float
    # and integer dtype, and the traces of the wrong kind only raise an error
    # that names the right endpoint. The first trace is the signature that
    # `serving_default` / TF Serving see: float32 for `serve`, uint8 for
    # `serve_uint8`.
    @tf.function(autograph=False)
    def serve(images):
        if images.dtype.is_floating:
            images = tf.cast(images, tf.float32)
            check = tf.debugging.Assert(
                tf.reduce_all((images >= 0.0) & (images <= 1.0)),
                [
                    tf.strings.format(
                        SERVE_ENDPOINT + " takes float images with values in [0, 1]; got "
                        "values in [{}, {}]. Pass raw 0-255 pixels as uint8 to "
                        + SERVE_UINT8_ENDPOINT
                        + ", or divide them by 255 first.",
                        (tf.reduce_min(images), tf.reduce_max(images)),
                    )
                ],
            )
        else:
            check = _refuse_dtype(
                SERVE_ENDPOINT,
                images.dtype,
                expected="float32 images with values in [0, 1]",
                fix=f"Pass uint8 pixels in [0, 255] to {SERVE_UINT8_ENDPOINT}, or "
                "divide them by 255 and cast to float32.",
            )
        with tf.control_dependencies([check]):
            return features(tf.cast(images, tf.float32))

    @tf.function(autograph=False)
    def serve_uint8(images):
        if images.dtype == tf.uint8:
            return features(tf.cast(images, tf.float32) / 255.0)
        if images.dtype.is_floating:
            fix = f"Pass float images in [0, 1] to {SERVE_ENDPOINT}."
        else:
            fix = "Cast pixels in [0, 255] to uint8 first."
        check = _refuse_dtype(
            SERVE_UINT8_ENDPOINT,
            images.dtype,
            expected="uint8 images with values in [0, 255]",
            fix=fix,
        )
        with tf.control_dependencies([check]):
            return features(tf.cast(images, tf.float32))

    for endpoint, first_dtype in ((serve, "float32"), (serve_uint8, "uint8")):
        for dtype in dict.fromkeys((first_dtype,) + FLOAT_DTYPES + INTEGER_DTYPES):
            endpoint.get_concrete_function(tf.TensorSpec(batch_shape, dtype, name="images"))

    archive = keras.export.ExportArchive()
    # The first endpoint is also written as the `serving_default` signature.
    archive.add_endpoint(SERVE_ENDPOINT, serve)
    archive.add_endpoint(SERVE_UINT8_ENDPOINT, serve_uint8)
    archive.write_out(path, verbose=verbose)


def _refuse_dtype(endpoint, dtype, expected, fix):
    """An assertion that always fails at run time, naming what `endpoint` got."""
    import tensorflow as tf

    return tf.debugging.Assert(
        False, [f"{endpoint} got {dtype.name} images; it takes {expected}. {fix}"]
    )


def _export_saved_model_through_tensorflow(encoder, path, image_shape, verbose):
    with tempfile.TemporaryDirectory() as folder:
        keras_file = os.path.join(folder, "encoder.keras")
        try:
            encoder.save(keras_file)
        except Exception as error:
            raise ValueError(
                "On the torch backend the encoder is re-exported through a "
                "TensorFlow-backend process from a `.keras` file, and saving it "
                f"failed: {error}"
            ) from error
        arguments = json.dumps(
            {
                "keras_file": keras_file,
                "path": os.path.abspath(path),
                "input_shape": list(image_shape),
                "verbose": bool(verbose),
            }
        )
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from keras_pid_ssl.export import _main; _main(sys.argv[1])",
                arguments,
            ],
            env=env,
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise RuntimeError(
            "Exporting the SavedModel through the TensorFlow backend failed "
            "(torch backend; see export_backbone's docstring). The encoder "
            "must be rebuildable from its `.keras` file, i.e. made of Keras and "
            "keras_pid_ssl layers. Subprocess output:\n" + result.stderr[-4000:]
        )
    if verbose and result.stdout:
        print(result.stdout, end="")


def _export_onnx(encoder, path, image_shape, verbose):
    import importlib.util

    backend = keras.backend.backend()
    required = _ONNX_REQUIREMENTS.get(backend)
    if required is None:
        raise NotImplementedError(
            "export_backbone(format='onnx') supports the TensorFlow, JAX and "
            f"PyTorch backends. Current backend: {backend}"
        )
    missing = [name for name in required if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"export_backbone(format='onnx') on the {backend} backend needs "
            f"{', '.join(required)}; missing: {', '.join(missing)}. Install with "
            f"`pip install {' '.join(required)}` (and `onnxruntime` to run the "
            "exported file), or export a SavedModel with format='tf_saved_model'."
        )
    if not isinstance(encoder, keras.Model):
        inputs = keras.Input(shape=image_shape, name="images")
        encoder = keras.Model(inputs, encoder(inputs), name="backbone")
    encoder.export(
        path,
        format="onnx",
        verbose=verbose,
        input_signature=[
            keras.InputSpec(shape=(None,) + image_shape, dtype="float32", name="images")
        ],
    )


def _main(arguments):
    """Entry point of the TensorFlow-backend subprocess used from torch."""
    import keras_pid_ssl  # noqa: F401  (registers the library's layers)

    arguments = json.loads(arguments)
    encoder = keras.saving.load_model(arguments["keras_file"], compile=False)
    export_backbone(
        encoder,
        arguments["path"],
        input_shape=arguments["input_shape"],
        verbose=arguments["verbose"],
    )
