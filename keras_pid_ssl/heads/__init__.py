"""Heads: the projector MLP and a linear classifier."""

from keras_pid_ssl.heads.linear_classifier import LinearClassifier
from keras_pid_ssl.heads.projector import Projector

__all__ = [
    "LinearClassifier",
    "Projector",
]
