"""Linear evaluation of a pretrained backbone (frozen features, logistic regression).

    python recipes/linear_eval.py --backbone_path=runs/quick/backbone --dataset=fashion_mnist
    python recipes/linear_eval.py --backbone_path=runs/mine/backbone.keras --data=my_labelled/

`--backbone_path` is an exported SavedModel folder or a `.keras` file;
`--data` a dataset name, a labelled image folder or an .npz file (as for
`kps linear-eval`, which takes the same flags).
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
flags.DEFINE_integer("seed", 0, "Seed of a test split carved from data without one.")


def main(argv):
    del argv
    import json

    import keras_pid_ssl as kps

    dataset, data_options = eval_flags.data_arguments(FLAGS)
    result = kps.evaluation.linear_eval(
        FLAGS.backbone_path,
        dataset,
        **data_options,
        output_dir=FLAGS.output_dir,
        train_subset=FLAGS.train_subset,
        test_subset=FLAGS.test_subset,
        regularization=FLAGS.regularization,
        seed=FLAGS.seed,
    )
    print(f"linear eval top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%")
    print(f"test split: {result['test_split']['description']}")
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
