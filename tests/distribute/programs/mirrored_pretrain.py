"""`kps.training.pretrain` under a 2-replica MirroredStrategy (2 logical CPUs).

Runs the pseudo-label PID recipe for 2 epochs on a tiny Fashion-MNIST in the
idx format, re-clustering every epoch, and writes what the parent checks:
replicas, the labels' shape, each refresh and the final loss.

    KERAS_BACKEND=tensorflow python mirrored_pretrain.py OUT.json WORK_DIR
"""

import gzip
import json
import math
import os
import struct
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

import keras_pid_ssl as kps  # noqa: E402


def write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype("uint8").tobytes())


def main(out_path, work_dir):
    data_dir = os.path.join(work_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("test", 32)):
        images_name, labels_name = kps.data.fashion_mnist.FILES[split]
        write_idx(os.path.join(data_dir, images_name), rng.integers(0, 255, (n, 12, 12)))
        write_idx(os.path.join(data_dir, labels_name), np.arange(n) % 4)

    summary = kps.training.pretrain(
        os.path.join(work_dir, "run"), dataset="fashion_mnist", data_dir=data_dir, method="pid",
        backbone="small_convnet", epochs=2, batch_size=16, optimizer="lars", warmup_epochs=1,
        projector_dims=(16, 8), strategy="mirrored", pid_target="pseudo_label", num_clusters=4,
        recluster_every=1, pid_warmup_epochs=0, probe_subset=32, knn_every=0, monitor_size=0,
        export=False, verbose=0,
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
    main(sys.argv[1], sys.argv[2])
