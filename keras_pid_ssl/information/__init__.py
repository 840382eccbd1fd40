"""Gaussian mutual information and partial information decomposition."""

from keras_pid_ssl.information.classifier_pid import ClassifierPIDHeads
from keras_pid_ssl.information.classifier_pid import classifier_pid
from keras_pid_ssl.information.classifier_pid import cross_entropy
from keras_pid_ssl.information.classifier_pid import label_entropy
from keras_pid_ssl.information.gaussian_pid import ATOM_NAMES
from keras_pid_ssl.information.gaussian_pid import gaussian_mutual_information
from keras_pid_ssl.information.gaussian_pid import gaussian_pid
from keras_pid_ssl.information.gaussian_pid import mmi_atoms
from keras_pid_ssl.information.gaussian_pid import per_dimension_pid

__all__ = [
    "ATOM_NAMES",
    "ClassifierPIDHeads",
    "classifier_pid",
    "cross_entropy",
    "gaussian_mutual_information",
    "gaussian_pid",
    "label_entropy",
    "mmi_atoms",
    "per_dimension_pid",
]
