"""Linear evaluation of a pretrained backbone (frozen features, logistic regression).

    python recipes/linear_eval.py --backbone_path=runs/quick/backbone --dataset=fashion_mnist

`--backbone_path` is an exported SavedModel folder or a `.keras` file.
Prints top-1 / top-5 on the test split and writes linear_eval.json (and, for
--dataset=image_folder, the class map class_names.json, reused by later runs).
"""

import eval_flags
from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("backbone_path", None, "SavedModel folder or .keras file.", required=True)
eval_flags.define_data_flags()
flags.DEFINE_string(
    "output_dir", None, "Where to write linear_eval.json (default: next to the backbone)."
)
flags.DEFINE_integer("train_subset", None, "Use only the first N training images.")
flags.DEFINE_integer("test_subset", None, "Use only the first N test images.")
flags.DEFINE_float("regularization", 1.0, "Inverse L2 strength C of the logistic regression.")


def main(argv):
    del argv
    import json

    import keras_pid_ssl as kps

    result = kps.evaluation.linear_eval(
        FLAGS.backbone_path,
        FLAGS.dataset,
        output_dir=FLAGS.output_dir,
        data_dir=FLAGS.data_dir,
        train_subset=FLAGS.train_subset,
        test_subset=FLAGS.test_subset,
        resize_method=FLAGS.resize_method,
        class_names=FLAGS.class_names,
        regularization=FLAGS.regularization,
    )
    print(f"linear eval top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%")
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
