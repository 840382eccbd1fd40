"""Gaussian mutual information and partial information decomposition."""

from keras_pid_ssl.information.classifier_pid import ClassifierPIDHeads
from keras_pid_ssl.information.classifier_pid import classifier_pid
from keras_pid_ssl.information.gaussian_pid import ATOM_NAMES
from keras_pid_ssl.information.gaussian_pid import gaussian_mutual_information
from keras_pid_ssl.information.gaussian_pid import gaussian_pid
from keras_pid_ssl.information.gaussian_pid import per_dimension_pid

__all__ = [
    "ClassifierPIDHeads",
    "classifier_pid",
    "ATOM_NAMES",
    "gaussian_mutual_information",
    "gaussian_pid",
    "per_dimension_pid",
]
