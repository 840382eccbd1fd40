"""One worker of a `MultiWorkerMirroredStrategy` cluster: a short PIDModel fit.

The parent sets `TF_CONFIG` (two workers on 127.0.0.1 ports) and starts this
program once per worker:

    KERAS_BACKEND=tensorflow TF_CONFIG='{"cluster": {"worker": [...]},
        "task": {"type": "worker", "index": 0}}' python multiworker_fit.py OUT.json

Every worker fits the same PIDModel (synchronised batch norm) on the same
global batches of 16 images, split 8 per worker, and writes its history.
Worker 0 then fits a copy from the same initial weights on one device, so the
parent can compare the cluster with a single device.
"""

import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_pid_ssl as kps

GLOBAL_BATCH = 16
IMAGE_SHAPE = (8, 8, 1)


def make_model():
    encoder = kps.backbones.SmallConvNet(
        input_shape=IMAGE_SHAPE, widths=(4, 8), synchronized_bn=True
    )
    projector = kps.heads.Projector(hidden_dims=(16,), output_dim=8, synchronized_bn=True)
    loss = kps.losses.PIDLoss(base="barlow_twins", w_joint=0.5, w_red=0.5, w_syn=1.0)
    # No `pid_grad_ratio` (its 2-replica equality is checked in
    # test_replica_equivalence.py): its extra ops change float rounding in the
    # step; over two SGD epochs that moved a one-device history by ~2e-7 and
    # the cluster's smallest atom (unique2) by 1.2e-4 relative, past the
    # elementwise 1e-4 the comparison allows (1e-6 without it).
    return kps.PIDModel(encoder, projector, loss=loss, track_gradient_ratio=False)


def fit(model, dataset):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))
    return model.fit(dataset, epochs=2, verbose=0, shuffle=False).history


def main():
    out_path = sys.argv[1]
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    # The strategy must exist before any other TF op runs.
    scope = kps.distribute.strategy_scope("multiworker")
    rng = np.random.default_rng(1)
    target = rng.uniform(size=(2 * GLOBAL_BATCH,) + IMAGE_SHAPE).astype("float32")
    # Images in [0, 1], as SSLModel.fit checks.
    views = [
        np.clip(target + 0.3 * rng.normal(size=target.shape), 0.0, 1.0).astype("float32")
        for _ in range(2)
    ]
    batches = {"view1": views[0], "view2": views[1], "target": target}
    dataset = tf.data.Dataset.from_tensor_slices(batches).batch(GLOBAL_BATCH, drop_remainder=True)
    keras.utils.set_random_seed(0)
    with scope:
        model = make_model()
        model.build((None,) + IMAGE_SHAPE)
        initial = model.get_weights()
        history = fit(model, dataset)
    report = {
        "task_index": task["index"],
        "num_replicas": scope.num_replicas,
        "history": history,
    }
    if task["index"] == 0:
        single = make_model()
        single.build((None,) + IMAGE_SHAPE)
        single.set_weights(initial)
        report["history_single"] = fit(single, dataset)
    with open(out_path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
