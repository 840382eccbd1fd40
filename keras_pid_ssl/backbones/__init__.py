"""Backbones: feature extractors returning a pooled feature vector."""

from keras_pid_ssl.backbones.build import build
from keras_pid_ssl.backbones.resnet import ResNet
from keras_pid_ssl.backbones.resnet import ResNet18
from keras_pid_ssl.backbones.resnet import ResNet34
from keras_pid_ssl.backbones.resnet import ResNet50
from keras_pid_ssl.backbones.small_convnet import SmallConvNet

__all__ = [
    "build",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "SmallConvNet",
]
