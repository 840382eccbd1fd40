"""`kps.training.pretrain` under a 2-replica MirroredStrategy (2 logical CPUs).

Runs the pseudo-label PID recipe for 2 epochs on the tests' tiny Fashion-MNIST
(idx files in DATA_DIR), re-clustering every epoch, and writes what the parent
checks: replicas, each refresh and the final loss.

    KERAS_BACKEND=tensorflow python mirrored_pretrain.py OUT.json WORK_DIR DATA_DIR
"""

import json
import math
import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras_pid_ssl as kps  # noqa: E402


def main(out_path, work_dir, data_dir):
    summary = kps.training.pretrain(
        os.path.join(work_dir, "run"),
        dataset="fashion_mnist",
        data_dir=data_dir,
        method="pid",
        backbone="small_convnet",
        epochs=2,
        batch_size=16,
        optimizer="lars",
        warmup_epochs=1,
        projector_dims=(16, 8),
        strategy="mirrored",
        pid_target="pseudo_label",
        num_clusters=4,
        recluster_every=1,
        pid_warmup_epochs=0,
        probe_subset=32,
        knn_every=0,
        monitor_size=0,
        export=False,
        verbose=0,
    )
    result = {
        "num_replicas": summary["num_replicas"],
        "refreshes": summary["pseudo_label_refreshes"],
        "loss": summary["final_metrics"]["loss"],
    }
    result["loss_finite"] = result["loss"] is not None and math.isfinite(result["loss"])
    with open(out_path, "w") as f:
        json.dump(result, f, default=str)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
