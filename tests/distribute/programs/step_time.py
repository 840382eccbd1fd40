"""Training-step time on 2 CPU replicas versus 1 device (a measurement, not a test).

    KERAS_BACKEND=tensorflow python step_time.py [OUT.json]
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        KERAS_BACKEND=jax python step_time.py [OUT.json]

Fits a PIDModel (SmallConvNet widths 16-32-64 on 32x32x3 images, projector
256-256, global batch 64) under the 2-replica strategy (TF: 2 logical CPU
devices, `MirroredStrategy`, synchronised batch norm; JAX: 2 host devices,
`DataParallel`) and with no strategy, and prints the median wall time of a
training step after compilation. Both "devices" share the same CPU cores, so
this measures the cost of the distribution machinery, not a speed-up.
"""

import json
import os
import sys
import time

BACKEND = os.environ["KERAS_BACKEND"]
if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402  (tf.data feeds fit on both backends)

import keras_pid_ssl as kps  # noqa: E402

GLOBAL_BATCH = 64
IMAGE_SHAPE = (32, 32, 3)
STEPS = 20
WARMUP_STEPS = 3
DISTRIBUTED = "mirrored" if BACKEND == "tensorflow" else "jax_data_parallel"
DEVICES = ["/cpu:0", "/cpu:1"] if BACKEND == "tensorflow" else ["cpu:0", "cpu:1"]


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # `logs` values are synced to host, so the step has finished.
        self.times.append(time.perf_counter() - self._start)


def step_times(name, dataset):
    kwargs = {"devices": DEVICES} if name != "none" else {}
    with kps.distribute.strategy_scope(name, **kwargs) as scope:
        sync = scope.synchronized_batch_norm
        model = kps.PIDModel(
            kps.backbones.SmallConvNet(
                input_shape=IMAGE_SHAPE, widths=(16, 32, 64), synchronized_bn=sync
            ),
            kps.heads.Projector(hidden_dims=(256,), output_dim=256, synchronized_bn=sync),
            loss=kps.losses.PIDLoss(base="barlow_twins", w_syn=1.0),
        )
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01))
        timer = StepTimer()
        model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
        times = np.array(timer.times[WARMUP_STEPS:])
        return {
            "num_replicas": scope.num_replicas,
            "median_ms": float(np.median(times) * 1e3),
            "p10_ms": float(np.percentile(times, 10) * 1e3),
            "p90_ms": float(np.percentile(times, 90) * 1e3),
            "first_step_s": float(timer.times[0]),
        }


def main():
    rng = np.random.default_rng(0)
    n = (STEPS + WARMUP_STEPS) * GLOBAL_BATCH
    target = rng.uniform(size=(n,) + IMAGE_SHAPE).astype("float32")
    views = [
        np.clip(target + 0.1 * rng.normal(size=target.shape), 0, 1).astype("float32")
        for _ in range(2)
    ]
    dataset = (
        tf.data.Dataset.from_tensor_slices({"view1": views[0], "view2": views[1], "target": target})
        .batch(GLOBAL_BATCH, drop_remainder=True)
        .cache()
    )
    report = {
        "backend": BACKEND,
        "cpu_count": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "two_replicas": step_times(DISTRIBUTED, dataset),
        "one_device": step_times("none", dataset),
        "load_average_after": os.getloadavg(),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
