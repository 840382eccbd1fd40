"""Flags shared by `linear_eval.py` and `finetune.py`: which labelled data, and how.

`--data` takes what `kps linear-eval --data` takes (a dataset name, a labelled
image folder or an .npz file); `--dataset` with `--data_dir` still works.
"""

from absl import app
from absl import flags

DATASETS = ["cifar10", "cifar100", "stl10", "fashion_mnist", "image_folder"]


def define_data_flags():
    """Defines --data, --dataset, --data_dir, --resize_method, --class_names, --test_fraction."""
    flags.DEFINE_string(
        "data",
        None,
        "The labelled data, instead of --dataset/--data_dir: a dataset name, a labelled image "
        "folder (<folder>/<class>/<images>, or train/ and test/ sub-folders of them) or an .npz "
        "file (x_train, y_train, x_test, y_test; or images, labels). Data without a test split "
        "gets a seeded, class-stratified one (--test_fraction).",
    )
    flags.DEFINE_enum(
        "dataset",
        "cifar10",
        DATASETS,
        "Dataset (image_folder: --data_dir holds train/<class>/* and test/<class>/*, or "
        "<class>/* alone, from which a test split is carved).",
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
    flags.DEFINE_float(
        "test_fraction",
        None,
        "Data without a test split: the share of each class held out for testing "
        "(default: kps.evaluation's, 0.2).",
    )


def data_arguments(flag_values):
    """`(dataset, keyword arguments)` of kps.evaluation's linear_eval / finetune from
    the data flags: `--data` if given, else `--dataset`."""
    dataset = flag_values.dataset
    if flag_values.data is not None:
        if flag_values["dataset"].present:
            raise app.UsageError(
                f"--data={flag_values.data} and --dataset={flag_values.dataset} both name the "
                "data: pass one of them."
            )
        dataset = flag_values.data
    options = dict(
        data_dir=flag_values.data_dir,
        resize_method=flag_values.resize_method,
        class_names=flag_values.class_names,
    )
    if flag_values.test_fraction is not None:
        options["test_fraction"] = flag_values.test_fraction
    return dataset, options
