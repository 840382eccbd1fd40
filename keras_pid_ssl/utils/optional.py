"""Optional dependencies, imported when a feature needs them.

`import keras_pid_ssl` needs Keras and a backend only. TensorFlow (the
`tf.data` pipelines, tensorflow-datasets, SavedModel export) comes with the
`tensorflow` extra; a feature that needs it imports it through
`import_tensorflow`, which names the extra when it is missing.
"""

import importlib

import keras

EXTRAS = {
    "tensorflow": "pip install 'keras-pid-ssl[tensorflow]' (CPU) or "
    "'keras-pid-ssl[tensorflow-cuda]' (NVIDIA GPUs)",
    "tensorflow_datasets": "pip install 'keras-pid-ssl[tensorflow]'",
}


def import_optional(module, feature):
    """Imports `module` for `feature`, or raises an ImportError naming the extra."""
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
    tf = import_optional("tensorflow", feature)
    if for_data and keras.backend.backend() != "tensorflow":
        try:
            if tf.config.get_visible_devices("GPU"):
                tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # devices already initialised: nothing to change now
            pass
    return tf
