"""keras_pid_ssl: self-supervised learning with partial information decomposition.

Keras 3 (TensorFlow, JAX, PyTorch) implementation of "More Synergy, Less
Redundancy: Exploiting Joint Mutual Information for Self-Supervised Learning"
(Mohamadi, Doretto, Adjeroh, ICIP 2023), with Barlow Twins and VICReg.
"""

from keras_pid_ssl import augment
from keras_pid_ssl import backbones
from keras_pid_ssl import callbacks
from keras_pid_ssl import data
from keras_pid_ssl import distribute
from keras_pid_ssl import evaluation
from keras_pid_ssl import heads
from keras_pid_ssl import information
from keras_pid_ssl import losses
from keras_pid_ssl import metrics
from keras_pid_ssl import models
from keras_pid_ssl import optimizers
from keras_pid_ssl import presets
from keras_pid_ssl import training
from keras_pid_ssl.export import export_backbone
from keras_pid_ssl.models import PIDModel
from keras_pid_ssl.models import SSLModel
from keras_pid_ssl.version import __version__

__all__ = [
    "augment",
    "backbones",
    "callbacks",
    "data",
    "distribute",
    "evaluation",
    "heads",
    "information",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "presets",
    "training",
    "export_backbone",
    "PIDModel",
    "SSLModel",
    "__version__",
]
