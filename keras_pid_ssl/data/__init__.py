"""Data: datasets from the user's own files, and augmented `tf.data` pipelines.

`load` reads CIFAR-10/100 and STL-10 (through tensorflow-datasets, from the
original archives, offline), Fashion-MNIST (idx files) and image folders as
uint8 arrays; `ssl_dataset` turns images into batches of augmented views for
`SSLModel` / `PIDModel` on any backend (or, with `views="images"`, into
batches of the uint8 images alone, for a model that draws its views on the
device: `kps.SSLModel(..., augment="cifar")`); `labeled_dataset` gives
`(images, labels)` batches for probes. `ImageBatches` streams uint8 image
batches for such a model without TensorFlow. `load_labelled` reads labelled
data (a dataset name, a labelled image folder or an `.npz`) as train and
test splits, carving a stratified test split where none is given.
"""

from keras_pid_ssl.data.image_batches import ImageBatches
from keras_pid_ssl.data.images import convert_channels
from keras_pid_ssl.data.images import pad_images
from keras_pid_ssl.data.images import prepare_images
from keras_pid_ssl.data.images import resize_images
from keras_pid_ssl.data.load import DATASETS
from keras_pid_ssl.data.load import LabelledData
from keras_pid_ssl.data.load import class_names
from keras_pid_ssl.data.load import load
from keras_pid_ssl.data.load import load_labelled
from keras_pid_ssl.data.load import read_npz
from keras_pid_ssl.data.load import stratified_split
from keras_pid_ssl.data.pipelines import labeled_dataset
from keras_pid_ssl.data.pipelines import ssl_dataset

__all__ = [
    "ImageBatches",
    "LabelledData",
    "load_labelled",
    "read_npz",
    "stratified_split",
    "convert_channels",
    "pad_images",
    "prepare_images",
    "resize_images",
    "DATASETS",
    "class_names",
    "load",
    "labeled_dataset",
    "ssl_dataset",
]
