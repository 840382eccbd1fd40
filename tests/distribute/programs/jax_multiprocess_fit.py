"""One process of a two-process JAX cluster: a short PIDModel fit.

The parent starts this program twice, with process ids 0 and 1 and the same
free loopback port for the coordinator (process 0). Process 0 passes the
cluster as arguments, process 1 through the `KERAS_DISTRIBUTION_*` environment
variables:

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu python jax_multiprocess_fit.py \
        OUT.json PROCESS_ID PORT

`strategy_scope("jax_data_parallel", coordinator_address=..., num_processes=2,
process_id=...)` joins the cluster (`jax.distributed.initialize` through
`keras.distribution.initialize`) and shards every global batch of 16 images
over the 2 processes' CPU devices (Keras shards the tf.data dataset per
process). Process 0 then fits a copy on its own device from the same weights,
so the parent can compare the cluster with a single device.
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
    encoder = kps.backbones.SmallConvNet(input_shape=IMAGE_SHAPE, widths=(4, 8))
    projector = kps.heads.Projector(hidden_dims=(16,), output_dim=8)
    loss = kps.losses.PIDLoss(base="barlow_twins", w_joint=0.5, w_red=0.5, w_syn=1.0)
    return kps.PIDModel(encoder, projector, loss=loss)


def fit(model, dataset):
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))
    return model.fit(dataset, epochs=2, verbose=0, shuffle=False).history


def main():
    out_path, process_id, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if process_id == 0:
        scope = kps.distribute.strategy_scope(
            "jax_data_parallel",
            coordinator_address=f"127.0.0.1:{port}",
            num_processes=2,
            process_id=process_id,
        )
    else:
        # What a launcher does instead: the cluster in environment variables
        # and the bare name, as in `--strategy=jax_data_parallel`.
        os.environ.update(
            KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
            KERAS_DISTRIBUTION_NUM_PROCESSES="2",
            KERAS_DISTRIBUTION_PROCESS_ID=str(process_id),
        )
        scope = kps.distribute.strategy_scope("jax_data_parallel")
    rng = np.random.default_rng(1)
    target = rng.uniform(size=(4 * GLOBAL_BATCH,) + IMAGE_SHAPE).astype("float32")
    # Images in [0, 1], as SSLModel.fit checks.
    views = [
        np.clip(target + 0.3 * rng.normal(size=target.shape), 0.0, 1.0).astype("float32")
        for _ in range(2)
    ]

    def dataset():
        batches = {"view1": views[0], "view2": views[1], "target": target}
        return tf.data.Dataset.from_tensor_slices(batches).batch(GLOBAL_BATCH, drop_remainder=True)

    keras.utils.set_random_seed(0)
    with scope:
        import jax

        model = make_model()
        model.build((None,) + IMAGE_SHAPE)
        initial = model.get_weights()
        history = fit(model, dataset())
        report = {
            "process_id": process_id,
            "process_count": jax.process_count(),
            "num_replicas": scope.num_replicas,
            "history": history,
        }
    if process_id == 0:
        single = make_model()
        single.build((None,) + IMAGE_SHAPE)
        single.set_weights(initial)
        report["history_single"] = fit(single, dataset())
    with open(out_path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
