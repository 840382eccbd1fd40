"""Self-supervised losses: Barlow Twins, VICReg and PID (view or pseudo-label target)."""

from keras_pid_ssl.losses.barlow_twins import BarlowTwinsLoss
from keras_pid_ssl.losses.base import SSLLoss
from keras_pid_ssl.losses.pid import COEFFICIENT_NAMES
from keras_pid_ssl.losses.pid import PIDLoss
from keras_pid_ssl.losses.pseudo_label_pid import PseudoLabelPIDLoss
from keras_pid_ssl.losses.vicreg import VICRegLoss

__all__ = [
    "BarlowTwinsLoss",
    "SSLLoss",
    "COEFFICIENT_NAMES",
    "PIDLoss",
    "PseudoLabelPIDLoss",
    "VICRegLoss",
]
