"""Two CPU replicas versus one device on the same global batch.

Run in a fresh process (device set-up must not leak into other tests):

    KERAS_BACKEND=tensorflow python replica_equivalence.py OUT.json [parts]
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        KERAS_BACKEND=jax python replica_equivalence.py OUT.json [parts]

`parts` is a comma-separated subset of `gather` (TF only),
`gradients-inference`, `gradients-training`, `fit` and `naive` (default: all
but `naive`). TensorFlow splits the CPU into 2 logical devices and uses
`MirroredStrategy`; JAX uses `keras.distribution.DataParallel` over 2 host
devices. Writes a JSON report:

- `gather`: the rows each replica sees after `gather_replicas` once and
  twice (it must be idempotent: PIDLoss's base loss gathers again), and
  `sum_over_replicas` of each replica's row sum.
- `gradients`: for SSLModel + BarlowTwinsLoss, SSLModel + VICRegLoss and
  PIDModel + PIDLoss, with batch norm in inference mode and in training mode
  (synchronised batch norm on TF; JAX's global program needs nothing), the
  loss and every trainable weight's gradient of one step on a global batch of
  2 x 8 images, on 2 replicas and on 1 device. The 2-replica gradient is what
  Keras' optimizer applies: the SUM over replicas
  (`keras/src/backend/tensorflow/optimizer.py`, `_all_reduce_sum_gradients`)
  on TF, the gradient of the global SPMD program on JAX.
- `fit`: a 2-replica and a 1-device `fit` of PIDModel (SGD, 2 epochs of 4
  steps) from the same weights on the same data: histories and final weights.
- `naive` (TF, for the report): the same gradients with `gather_replicas`
  disabled, i.e. per-replica statistics, to show how far off they are.
"""

import json
import os
import sys

BACKEND = os.environ["KERAS_BACKEND"]
if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_pid_ssl as kps  # noqa: E402

PER_REPLICA_BATCH = 8
REPLICAS = 2
GLOBAL_BATCH = PER_REPLICA_BATCH * REPLICAS
IMAGE_SHAPE = (8, 8, 1)
DISTRIBUTED = "mirrored" if BACKEND == "tensorflow" else "jax_data_parallel"
DEVICES = ["/cpu:0", "/cpu:1"] if BACKEND == "tensorflow" else ["cpu:0", "cpu:1"]
LOSSES = ("barlow_twins", "vicreg", "pid")
DEFAULT_PARTS = "gather,gradients-inference,gradients-training,fit"


def make_model(loss_name, synchronized_bn):
    encoder = kps.backbones.SmallConvNet(
        input_shape=IMAGE_SHAPE, widths=(4, 8), synchronized_bn=synchronized_bn
    )
    projector = kps.heads.Projector(
        hidden_dims=(16,), output_dim=8, synchronized_bn=synchronized_bn
    )
    if loss_name == "barlow_twins":
        return kps.SSLModel(encoder, projector, kps.losses.BarlowTwinsLoss())
    if loss_name == "vicreg":
        return kps.SSLModel(encoder, projector, kps.losses.VICRegLoss())
    loss = kps.losses.PIDLoss(base="barlow_twins", w_joint=0.5, w_red=0.5, w_syn=1.0)
    return kps.PIDModel(encoder, projector, loss=loss)


def make_data(num_images, seed, pixel_range=(0.0, 1.0)):
    """Two noisy views and the clean target, pixels in `pixel_range`."""
    rng = np.random.default_rng(seed)
    low, high = pixel_range
    base = rng.uniform(low, high, size=(num_images,) + IMAGE_SHAPE)
    views = [
        np.clip(base + 0.3 * (high - low) * rng.normal(size=base.shape), low, high)
        for _ in range(2)
    ]
    return tuple(x.astype("float32") for x in (views[0], views[1], base))


def compare(distributed, single):
    distributed = np.asarray(distributed, dtype="float64")
    single = np.asarray(single, dtype="float64")
    abs_diff = float(np.max(np.abs(distributed - single)))
    scale = float(np.max(np.abs(single)))
    return {"max_abs": abs_diff, "max_rel": abs_diff / scale if scale else abs_diff}


def views_for(model, data):
    v1, v2, t = data
    return (v1, v2, t) if model.num_views == 3 else (v1, v2, None)


# --- one step's loss and gradients --------------------------------------------


def tf_single_step(model, views, training):
    @tf.function
    @tf.autograph.experimental.do_not_convert  # as Keras' own train step
    def step(v1, v2, t):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x=v1, y=v2, sample_weight=t, training=training)
        return loss, tape.gradient(loss, model.trainable_weights)

    loss, grads = step(*views)
    return float(loss), [g.numpy() for g in grads]


def tf_replica_step(scope, model, views, training):
    strategy = scope.strategy
    data = tuple(v for v in views if v is not None)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(GLOBAL_BATCH)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def step(batch):
        def replica_fn(*views):
            v1, v2 = views[0], views[1]
            t = views[2] if len(views) == 3 else None
            with tf.GradientTape() as tape:
                loss = model.compute_loss(x=v1, y=v2, sample_weight=t, training=training)
            grads = tape.gradient(loss, model.trainable_weights)
            context = tf.distribute.get_replica_context()
            # What Keras' optimizer applies: the SUM over replicas.
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            local_rows = tf.shape(v1)[0]
            # What Keras' trainer reports: loss * num_replicas.
            return loss * REPLICAS, grads, local_rows

        return strategy.run(replica_fn, args=batch)

    loss, grads, local_rows = step(batch)
    losses = [float(x) for x in strategy.experimental_local_results(loss)]
    rows = [int(x) for x in strategy.experimental_local_results(local_rows)]
    grads = [strategy.experimental_local_results(g)[0].numpy() for g in grads]
    return losses, grads, rows


def jax_step(model, views, training, distribution):
    import jax

    # What Keras' JAX trainer differentiates (`compute_loss_and_updates`),
    # without an optimizer.
    def loss_fn(trainable, non_trainable, metrics, v1, v2, t):
        z1, non_trainable = model.stateless_call(trainable, non_trainable, v1, training=training)
        loss, _ = model.stateless_compute_loss(
            trainable,
            non_trainable,
            metrics,
            x=v1,
            y=v2,
            y_pred=z1,
            sample_weight=t,
            training=training,
        )
        return loss, None

    grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    if distribution is not None:
        views = tuple(
            None
            if v is None
            else keras.distribution.distribute_tensor(v, distribution.get_data_layout(v.shape))
            for v in views
        )
    (loss, _), grads = grad_fn(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.metrics_variables],
        *views,
    )
    shards = (
        sorted(str(s.data.shape) for s in views[0].addressable_shards)
        if distribution is not None
        else None
    )
    return float(loss), [np.asarray(g) for g in grads], shards


def gradient_report(loss_name, mode, data):
    """mode: 'inference' (BN uses moving statistics) or 'training'."""
    training = mode == "training"
    synchronized_bn = training and BACKEND == "tensorflow"
    keras.utils.set_random_seed(0)
    single = make_model(loss_name, synchronized_bn)
    single.build((None,) + IMAGE_SHAPE)
    initial = single.get_weights()
    views = views_for(single, data)
    with kps.distribute.strategy_scope(DISTRIBUTED, devices=DEVICES) as scope:
        replicated = make_model(loss_name, synchronized_bn)
        replicated.build((None,) + IMAGE_SHAPE)
        replicated.set_weights(initial)
        if BACKEND == "tensorflow":
            losses, grads, rows = tf_replica_step(scope, replicated, views, training)
            extra = {"replica_losses": losses, "rows_per_replica": rows}
        else:
            loss, grads, shards = jax_step(replicated, views, training, scope.distribution)
            losses = [loss]
            extra = {"input_shards": shards}
    if BACKEND == "tensorflow":
        single_loss, single_grads = tf_single_step(single, views, training)
    else:
        single_loss, single_grads, _ = jax_step(single, views, training, None)
    per_weight = {
        w.path: compare(g, s) for w, g, s in zip(single.trainable_weights, grads, single_grads)
    }
    return {
        "loss_single": single_loss,
        "loss_replicas": losses,
        "loss": compare(losses, [single_loss] * len(losses)),
        "grad_max_rel": max(v["max_rel"] for v in per_weight.values()),
        "grad_max_abs": max(v["max_abs"] for v in per_weight.values()),
        "num_weights": len(per_weight),
        "grad_norm_single": float(np.sqrt(sum(np.sum(np.square(g)) for g in single_grads))),
        "per_weight": per_weight,
        **extra,
    }


# --- gather_replicas itself (TF) -------------------------------------------------


def gather_report():
    """Rows seen after one and after two `gather_replicas` calls, per replica."""
    scope = kps.distribute.strategy_scope(DISTRIBUTED, devices=DEVICES)
    rows = np.arange(GLOBAL_BATCH, dtype="float32").reshape(GLOBAL_BATCH, 1)
    dataset = tf.data.Dataset.from_tensor_slices(rows).batch(GLOBAL_BATCH)
    batch = next(iter(scope.strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def step(batch):
        def replica_fn(local):
            once = kps.distribute.gather_replicas(local)
            twice = kps.distribute.gather_replicas(once)
            total = kps.distribute.sum_over_replicas(tf.reduce_sum(local))
            return local[:, 0], once[:, 0], twice[:, 0], total

        return scope.strategy.run(replica_fn, args=(batch,))

    results = step(batch)
    local, once, twice, total = (
        [x.numpy().tolist() for x in scope.strategy.experimental_local_results(r)] for r in results
    )
    return {"local": local, "once": once, "twice": twice, "sum": total}


# --- fit -----------------------------------------------------------------------


def fit_report():
    import tensorflow as tf_data  # tf.data feeds fit on both backends

    synchronized_bn = BACKEND == "tensorflow"
    v1, v2, t = make_data(4 * GLOBAL_BATCH, seed=1)
    dataset = tf_data.data.Dataset.from_tensor_slices((v1, v2, t)).batch(
        GLOBAL_BATCH, drop_remainder=True
    )

    def run(name):
        keras.utils.set_random_seed(0)
        kwargs = {"devices": DEVICES} if name != "none" else {}
        with kps.distribute.strategy_scope(name, **kwargs) as scope:
            model = make_model("pid", synchronized_bn)
            model.build((None,) + IMAGE_SHAPE)
            model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05))
            history = model.fit(dataset, epochs=2, verbose=0, shuffle=False)
            return scope, history.history, model.get_weights(), model

    def devices_holding(variable):
        if BACKEND == "jax":
            return len(variable.value.sharding.device_set)
        return len(getattr(variable.value, "values", [variable.value]))

    keras.utils.set_random_seed(0)
    reference = make_model("pid", synchronized_bn)
    reference.build((None,) + IMAGE_SHAPE)
    initial = reference.get_weights()
    scope, history, weights, model = run(DISTRIBUTED)
    _, single_history, single_weights, _ = run("none")
    return {
        "num_replicas": scope.num_replicas,
        "synchronized_batch_norm": scope.synchronized_batch_norm,
        "devices_holding_first_kernel": devices_holding(model.trainable_weights[0]),
        "history_replicas": history,
        "history_single": single_history,
        "history": {key: compare(history[key], single_history[key]) for key in single_history},
        "weights": max(
            (compare(a, b) for a, b in zip(weights, single_weights)),
            key=lambda c: c["max_rel"],
        ),
        "weight_change": float(max(np.max(np.abs(a - b)) for a, b in zip(single_weights, initial))),
    }


def main():
    out_path = sys.argv[1]
    parts = (sys.argv[2] if len(sys.argv) > 2 else DEFAULT_PARTS).split(",")
    report = {"backend": BACKEND, "gradients": {}}
    # Zero-mean pixels for the one-step comparisons: batch norm's E[x^2] -
    # E[x]^2 (synchronised) cancels less, so float32 rounding, which alone
    # moves one device's gradients by a few 1e-6 when the batch is merely
    # permuted, stays well inside the 1e-5 tolerance. fit() gets [0, 1] images.
    data = make_data(GLOBAL_BATCH, seed=0, pixel_range=(-1.0, 1.0))
    for mode in ("inference", "training"):
        if f"gradients-{mode}" in parts:
            for name in LOSSES:
                report["gradients"][f"{name}/{mode}"] = gradient_report(name, mode, data)
    if "gather" in parts and BACKEND == "tensorflow":
        report["gather"] = gather_report()
    if "fit" in parts:
        report["fit"] = fit_report()
    if "naive" in parts:
        from keras_pid_ssl.losses import base

        base.gather_replicas = lambda z: z
        report["naive"] = {
            f"{name}/training": gradient_report(name, "training", data) for name in LOSSES
        }
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
