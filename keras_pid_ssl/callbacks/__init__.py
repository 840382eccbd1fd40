"""Callbacks: the PID training protocol and training monitors."""

from keras_pid_ssl.callbacks.collapse_monitor import CollapseMonitor
from keras_pid_ssl.callbacks.data_epoch import DataEpoch
from keras_pid_ssl.callbacks.knn_monitor import KNNMonitor
from keras_pid_ssl.callbacks.online_probe import OnlineLinearProbe
from keras_pid_ssl.callbacks.pid_monitor import PIDMonitor
from keras_pid_ssl.callbacks.pid_protocol import PIDProtocol
from keras_pid_ssl.callbacks.pseudo_labels import PseudoLabelRefresh
from keras_pid_ssl.callbacks.resumable_backup import ResumableBackup

__all__ = [
    "CollapseMonitor",
    "DataEpoch",
    "KNNMonitor",
    "OnlineLinearProbe",
    "PIDMonitor",
    "PIDProtocol",
    "PseudoLabelRefresh",
    "ResumableBackup",
]
