"""Callbacks: the PID training protocol, training monitors and the progress bar.

Each callback's module is imported on first use (PEP 562 `__getattr__`).
"""

import importlib

# Public name -> the module that defines it.
_MODULES = {
    "CollapseMonitor": "keras_pid_ssl.callbacks.collapse_monitor",
    "DataEpoch": "keras_pid_ssl.callbacks.data_epoch",
    "KNNMonitor": "keras_pid_ssl.callbacks.knn_monitor",
    "OnlineLinearProbe": "keras_pid_ssl.callbacks.online_probe",
    "PIDMonitor": "keras_pid_ssl.callbacks.pid_monitor",
    "PIDProtocol": "keras_pid_ssl.callbacks.pid_protocol",
    "ProgressBar": "keras_pid_ssl.callbacks.progress",
    "PseudoLabelRefresh": "keras_pid_ssl.callbacks.pseudo_labels",
    "ResumableBackup": "keras_pid_ssl.callbacks.resumable_backup",
}

__all__ = list(_MODULES)


def __getattr__(name):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
