"""Optional dependencies, imported when a feature needs them.

`import keras_pid_ssl` needs Keras and a backend only. TensorFlow (the
`tf.data` pipelines, tensorflow-datasets, SavedModel export) comes with the
`tensorflow` extra; a feature that needs it imports it through
`import_tensorflow`, which names the extra when it is missing.
"""

import importlib
import os
import sys

EXTRAS = {
    "tensorflow": "pip install 'keras-pid-ssl[tensorflow]' (CPU) or "
    "'keras-pid-ssl[tensorflow-cuda]' (NVIDIA GPUs)",
    "tensorflow_datasets": "pip install 'keras-pid-ssl[tensorflow]'",
}


def import_optional(module, feature):
    """Imports `module` for `feature`, or raises an ImportError naming the extra."""
    # A module already imported is returned without going through importlib.
    # This also serves the `tf.data` functions that call `import_tensorflow`
    # while AutoGraph traces them: AutoGraph would try to convert importlib's
    # frozen code and warn "AutoGraph could not transform <function
    # _gcd_import>" once per process.
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{feature} needs the `{module}` package, which is not installed. "
            f"Install it with: {EXTRAS.get(module, f'pip install {module}')}."
        ) from error


def import_tensorflow(feature, for_data=False):
    """TensorFlow for `feature`, with an ImportError naming the extra if missing.

    `for_data=True` (the `tf.data` pipelines) on a JAX or PyTorch backend
    hides the GPUs from TensorFlow, so that the host pipeline never takes
    accelerator memory from the backend that trains. This works only before
    TensorFlow has initialised its devices; afterwards it is left as it is.
    """
    if "tensorflow" not in sys.modules:
        quiet_tensorflow_info_logs()
    tf = import_optional("tensorflow", feature)
    import keras  # here, so that `quiet_tensorflow_info_logs` can run before Keras loads

    if for_data and keras.backend.backend() != "tensorflow":
        try:
            if tf.config.get_visible_devices("GPU"):
                tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # devices already initialised: nothing to change now
            pass
    return tf


def quiet_tensorflow_info_logs():
    """Hides TensorFlow's C++ INFO lines, unless the user chose a log level.

    Sets `TF_CPP_MIN_LOG_LEVEL=1` when it is unset, before TensorFlow loads:
    its INFO lines (e.g. "This TensorFlow binary is optimized to use
    available CPU instructions") are not the user's business, and its
    warnings and errors still show. A level the user set is kept. (TF 2.21
    prints its "oneDNN custom operations are on" line before reading the
    level; only `TF_ENABLE_ONEDNN_OPTS=0`, which changes the numerics, hides
    it, so it is left alone.)
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
