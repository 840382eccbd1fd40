"""Fine-tuning (and the semi-supervised 1% / 10% protocol) of a pretrained backbone.

    python recipes/finetune.py --backbone_path=runs/quick/backbone.keras \
        --dataset=fashion_mnist --label_fraction=0.1 --epochs=30

Prints top-1 / top-5 on the test split; writes finetune.json and
subset_indices.json (the labelled subset) into --output_dir, and for
--dataset=image_folder the class map class_names.json, reused by later runs.
"""

import eval_flags
from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "backbone_path", None, "The .keras backbone of a pretraining run.", required=True
)
eval_flags.define_data_flags()
flags.DEFINE_string("output_dir", "runs/finetune", "Output folder.")
flags.DEFINE_float(
    "label_fraction", 1.0, "Fraction of labelled training images (stratified, seeded)."
)
flags.DEFINE_integer("epochs", 30, "Epochs.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_float("lr", 0.05, "Head learning rate (SGD, cosine decay).")
flags.DEFINE_float("backbone_lr_scale", 0.1, "Backbone learning rate as a fraction of the head's.")
flags.DEFINE_integer(
    "train_subset", None, "Use only the first N training images (before the fraction)."
)
flags.DEFINE_integer("test_subset", None, "Use only the first N test images.")
flags.DEFINE_integer("seed", 0, "Seed of the labelled subset, a carved test split and training.")


def main(argv):
    del argv
    import json

    import keras_pid_ssl as kps

    dataset, data_options = eval_flags.data_arguments(FLAGS)
    result = kps.evaluation.finetune(
        FLAGS.backbone_path,
        dataset,
        FLAGS.output_dir,
        **data_options,
        label_fraction=FLAGS.label_fraction,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        lr=FLAGS.lr,
        backbone_lr_scale=FLAGS.backbone_lr_scale,
        train_subset=FLAGS.train_subset,
        test_subset=FLAGS.test_subset,
        seed=FLAGS.seed,
    )
    print(f"fine-tune top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%")
    print(f"test split: {result['test_split']['description']}")
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
