"""Models that wire backbone, projector and objective together for `fit`."""

from keras_pid_ssl.models.pid_model import PIDModel
from keras_pid_ssl.models.pseudo_label_pid_model import PseudoLabelPIDModel
from keras_pid_ssl.models.ssl_model import SSLModel

__all__ = [
    "PIDModel",
    "PseudoLabelPIDModel",
    "SSLModel",
]
