"""Choose the README's first command on a validation split (not a test).

The README's first command pretrains on the first 10,000 Fashion-MNIST
training images and scores the backbone with a logistic regression fitted on
the first 1,000 training labels. Its settings are chosen here, never on the
test split: the classifier is scored on training images 50,000-59,999, which
pretraining never sees, next to the same two floors (raw pixels, the same
network with random weights). Prints one JSON line per setting. The
search that chose the command's epochs and learning rate is in
`results/first_run_validation_2026-12-02.md`.

Usage:
    python benchmarks/first_run.py --out /tmp/first_run \
        --setting '{}' --setting '{"epochs": 10, "lr": 0.004}'
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_pid_ssl as kps  # noqa: E402
from keras_pid_ssl import evaluation  # noqa: E402

# The README's first command, as keyword arguments of `kps.pretrain`.
FIRST_RUN = dict(
    backbone="small_convnet",
    epochs=15,
    batch_size=256,
    optimizer="adamw",
    lr=0.008,
    projector_dims=(512, 512),
    train_subset=10000,
    probe_subset=2000,
)
VALIDATION = slice(50000, 60000)
LABELS = slice(0, 1000)


def score(features_train, y_train, features_val, y_val):
    probabilities = evaluation._logistic_probabilities(
        features_train, y_train, features_val, regularization=1.0, max_iter=1000, num_classes=10
    )
    return round(100 * float(np.mean(np.argmax(probabilities, 1) == y_val)), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--setting", action="append", default=[], help="JSON options")
    parser.add_argument("--floors", action="store_true")
    args = parser.parse_args()
    images, labels = kps.data.load("fashion_mnist", "train")
    x_train, y_train = images[LABELS], labels[LABELS]
    x_val, y_val = images[VALIDATION], labels[VALIDATION]
    if args.floors:
        print(
            json.dumps(
                {
                    "raw_pixels": score(
                        x_train.reshape(len(x_train), -1).astype("float32"),
                        y_train,
                        x_val.reshape(len(x_val), -1).astype("float32"),
                        y_val,
                    )
                }
            ),
            flush=True,
        )
    for i, setting in enumerate(args.setting):
        options = {**FIRST_RUN, **json.loads(setting)}
        output_dir = os.path.join(args.out, f"setting{i}")
        start = time.time()
        kps.pretrain("fashion_mnist", output_dir=output_dir, verbose=0, export=False, **options)
        seconds = time.time() - start
        backbone = evaluation.load_backbone(os.path.join(output_dir, "backbone.keras"))
        extract = evaluation.extract_features
        top1 = score(extract(backbone, x_train), y_train, extract(backbone, x_val), y_val)
        if args.floors and i == 0:
            keras.utils.set_random_seed(0)
            fresh = keras.models.clone_model(backbone)
            random = score(extract(fresh, x_train), y_train, extract(fresh, x_val), y_val)
            print(json.dumps({"random_init": random}), flush=True)
        print(
            json.dumps(
                {"setting": json.loads(setting), "val_top1": top1, "pretrain_s": round(seconds)}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
