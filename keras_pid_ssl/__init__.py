"""keras_pid_ssl: self-supervised learning with partial information decomposition.

Keras 3 (TensorFlow, JAX, PyTorch) implementation of "More Synergy, Less
Redundancy: Exploiting Joint Mutual Information for Self-Supervised Learning"
(Mohamadi, Doretto, Adjeroh, ICIP 2023), with Barlow Twins and VICReg.

The subpackages that define Keras-serialisable objects (layers, losses,
models, optimizers) are imported with the package, so that
`keras.saving.load_model` finds them after `import keras_pid_ssl`. The rest
(data pipelines, callbacks, training, evaluation, export, plots) is imported
on first use (PEP 562 `__getattr__`): `import keras_pid_ssl` loads no
TensorFlow on the JAX or PyTorch backend, and no tensorflow-datasets,
matplotlib, scikit-learn or SciPy beyond what Keras itself imports.
"""

import importlib

from keras_pid_ssl.utils.optional import quiet_tensorflow_info_logs

# Before Keras loads TensorFlow (TensorFlow backend): see the function.
quiet_tensorflow_info_logs()

from keras_pid_ssl import augment  # noqa: E402
from keras_pid_ssl import backbones  # noqa: E402
from keras_pid_ssl import heads  # noqa: E402
from keras_pid_ssl import information  # noqa: E402
from keras_pid_ssl import losses  # noqa: E402
from keras_pid_ssl import models  # noqa: E402
from keras_pid_ssl import optimizers  # noqa: E402
from keras_pid_ssl.models import PIDModel  # noqa: E402
from keras_pid_ssl.models import SSLModel  # noqa: E402
from keras_pid_ssl.version import __version__  # noqa: E402

# Imported on first access: name -> (module, attribute or None for the module).
_LAZY = {
    "callbacks": ("keras_pid_ssl.callbacks", None),
    "config": ("keras_pid_ssl.config", None),
    "data": ("keras_pid_ssl.data", None),
    "distribute": ("keras_pid_ssl.distribute", None),
    "evaluation": ("keras_pid_ssl.evaluation", None),
    "metrics": ("keras_pid_ssl.metrics", None),
    "plots": ("keras_pid_ssl.plots", None),
    "presets": ("keras_pid_ssl.presets", None),
    "training": ("keras_pid_ssl.training", None),
    "export_backbone": ("keras_pid_ssl.export", "export_backbone"),
    "pretrain": ("keras_pid_ssl.api", "pretrain"),
    "PretrainConfig": ("keras_pid_ssl.config", "PretrainConfig"),
}

__all__ = [
    "augment",
    "backbones",
    "callbacks",
    "config",
    "data",
    "distribute",
    "evaluation",
    "heads",
    "information",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "plots",
    "presets",
    "training",
    "export_backbone",
    "pretrain",
    "PretrainConfig",
    "PIDModel",
    "SSLModel",
    "__version__",
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    value = importlib.import_module(module_name)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
