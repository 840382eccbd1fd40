"""Augmentation: per-image random layers and the published two-view recipes.

Every layer here is a Keras layer that runs eagerly on the active backend and
inside `tf.data` on any backend (there on TensorFlow ops, on the CPU), drawing
its random parameters per image. Compose them, Keras core preprocessing layers
and, with the `keras-cv` extra installed, KerasCV layers in a
`keras.layers.Pipeline` (not `keras.Sequential`, which fails inside `tf.data`
under JAX). The same layers run on the accelerator inside a model's train
step (`kps.SSLModel(..., augment="cifar")`), keyed per step by
`key_seed_states`.
"""

from keras_pid_ssl.augment.color_jitter import ColorJitter
from keras_pid_ssl.augment.gaussian_blur import GaussianBlur
from keras_pid_ssl.augment.presets import PRESETS
from keras_pid_ssl.augment.presets import RECIPES
from keras_pid_ssl.augment.presets import TARGET_VIEWS
from keras_pid_ssl.augment.presets import preset
from keras_pid_ssl.augment.presets import resolve_views
from keras_pid_ssl.augment.presets import target_pipeline
from keras_pid_ssl.augment.presets import view_pipeline
from keras_pid_ssl.augment.random_apply import RandomApply
from keras_pid_ssl.augment.random_flip import RandomFlip
from keras_pid_ssl.augment.random_grayscale import RandomGrayscale
from keras_pid_ssl.augment.random_resized_crop import RandomResizedCrop
from keras_pid_ssl.augment.solarize import Solarize
from keras_pid_ssl.augment.views import Views
from keras_pid_ssl.augment.views import key_seed_states
from keras_pid_ssl.augment.views import seed_states

__all__ = [
    "ColorJitter",
    "GaussianBlur",
    "PRESETS",
    "RECIPES",
    "TARGET_VIEWS",
    "preset",
    "resolve_views",
    "target_pipeline",
    "view_pipeline",
    "RandomApply",
    "RandomFlip",
    "RandomGrayscale",
    "RandomResizedCrop",
    "Solarize",
    "Views",
    "key_seed_states",
    "seed_states",
]
