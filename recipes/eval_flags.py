"""Flags shared by `linear_eval.py` and `finetune.py`: which labelled data, and how."""

from absl import flags

DATASETS = ["cifar10", "cifar100", "stl10", "fashion_mnist", "image_folder"]


def define_data_flags():
    """Defines --dataset, --data_dir, --resize_method and --class_names."""
    flags.DEFINE_enum(
        "dataset",
        "cifar10",
        DATASETS,
        "Dataset (image_folder: --data_dir holds train/<class>/* and test/<class>/*).",
    )
    flags.DEFINE_string("data_dir", None, "Data folder.")
    flags.DEFINE_enum(
        "resize_method",
        None,
        ["pad", "resize"],
        "How images reach the backbone's input size: zero padding or bilinear resizing "
        "(default: pad for fashion_mnist, resize otherwise).",
    )
    flags.DEFINE_string(
        "class_names",
        None,
        "image_folder only: a class_names.json (class names indexed by label) to label every "
        "split with (default: the one in the output folder, else the train split's classes).",
    )
