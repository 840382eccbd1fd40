"""A `PIDModel` drawing its views on the device under a 2-replica MirroredStrategy.

Trains 2 epochs of 2 steps on uint8 images (`ssl_dataset(views="images")`),
then draws one keyed batch of views on each replica from the same images and
writes what the parent checks: replicas, losses, the step counter and
whether the replicas drew different views.

Without `jit_compile`: XLA cannot place mirrored variables of logical CPU
devices (the same holds for a model without augmentation).

    KERAS_BACKEND=tensorflow python mirrored_device_augment.py OUT.json
"""

import json
import math
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

import keras_pid_ssl as kps  # noqa: E402


def main(out_path):
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = kps.PIDModel(
            kps.backbones.SmallConvNet(input_shape=(16, 16, 1), widths=(4, 8)),
            kps.heads.Projector(hidden_dims=(16,), output_dim=8),
            loss=kps.losses.PIDLoss(),
            augment=kps.augment.preset("grayscale", image_size=16, seed=1),
        )
        model.compile(optimizer="adam", jit_compile=False)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 16, 16, 1), dtype=np.uint8)
    dataset = kps.data.ssl_dataset(images, views="images", batch_size=32, seed=0)
    history = model.fit(dataset, epochs=2, verbose=0).history

    batch = {"images": tf.constant(images[:8])}
    drawn = strategy.run(tf.function(lambda: model.draw_views(batch, training=True)))
    view1 = [v.numpy() for v in strategy.experimental_local_results(drawn["view1"])]
    counted = strategy.run(tf.function(lambda: model.augment_step.value + 0))
    steps = [int(v.numpy()) for v in strategy.experimental_local_results(counted)]
    result = {
        "num_replicas": strategy.num_replicas_in_sync,
        "losses": history["loss"],
        "loss_finite": all(math.isfinite(x) for x in history["loss"]),
        "steps_per_replica": steps,
        "replicas_draw_different_views": bool(not np.allclose(view1[0], view1[1])),
        "views_in_unit_interval": bool(min(v.min() for v in view1) >= 0.0)
        and bool(max(v.max() for v in view1) <= 1.0),
    }
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
