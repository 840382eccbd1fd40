"""Two CPU replicas versus one device on the same global batch.

Run in a fresh process (device set-up must not leak into other tests):

    KERAS_BACKEND=tensorflow python replica_equivalence.py OUT.json [parts]
    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        KERAS_BACKEND=jax python replica_equivalence.py OUT.json [parts]

`parts` is a comma-separated subset of `gather` (TF only),
`gradients-inference`, `gradients-training`, `fit`, `bn-state` and `naive`
(default: all but `naive`). TensorFlow splits the CPU into 2 logical devices and uses
`MirroredStrategy`; JAX uses `keras.distribution.DataParallel` over 2 host
devices. Writes a JSON report:

- `gather`: the rows each replica sees after `gather_replicas` once and
  twice (it must be idempotent: PIDLoss's base loss gathers again), and
  `sum_over_replicas` of each replica's row sum.
- `gradients`: for SSLModel + BarlowTwinsLoss, SSLModel + VICRegLoss,
  PIDModel + PIDLoss and PseudoLabelPIDModel (pseudo-labels ready), with batch
  norm in inference mode and in training mode (synchronised batch norm on TF;
  JAX's global program needs nothing), the loss and every trainable weight's
  gradient of one step on a global batch of 2 x 8 images, on 2 replicas and on
  1 device. The 2-replica gradient is what Keras' optimizer applies: the SUM
  over replicas (`keras/src/backend/tensorflow/optimizer.py`,
  `_all_reduce_sum_gradients`) on TF, the gradient of the global SPMD program
  on JAX. PID models also report `pid_grad_ratio`: on TF each replica's
  `PIDLoss.gradient_ratio` and the model's metric after the step, on JAX the
  metric.
- `fit`: a 2-replica and a 1-device `fit` of PIDModel (SGD, 2 epochs of 4
  steps) from the same weights on the same data: histories and final weights.
- `bn-state`: PIDModel training steps (2 replicas, and 1 device) from the
  same weights on the same views with two different target images: the batch
  norm moving statistics afterwards, which the target pass must not touch.
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
LOSSES = ("barlow_twins", "vicreg", "pid", "pseudo_label")
NUM_CLUSTERS = 4
DEFAULT_PARTS = "gather,gradients-inference,gradients-training,fit,bn-state"


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
    if loss_name == "pid":
        return kps.PIDModel(encoder, projector, loss=loss)
    model = kps.models.PseudoLabelPIDModel(
        encoder, projector, num_clusters=NUM_CLUSTERS, loss=loss, joint_hidden_dims=(16,)
    )
    # Pseudo-labels ready, as after PseudoLabelRefresh's first clustering.
    model.set_pseudo_label_state(
        ready=1.0, label_entropy=np.log(NUM_CLUSTERS), supervision_weight=0.1
    )
    return model


def make_data(num_images, seed, pixel_range=(0.0, 1.0)):
    """Every batch entry a model may take: two noisy views, the clean target
    (pixels in `pixel_range`) and balanced pseudo-labels."""
    rng = np.random.default_rng(seed)
    low, high = pixel_range
    base = rng.uniform(low, high, size=(num_images,) + IMAGE_SHAPE)
    views = [
        np.clip(base + 0.3 * (high - low) * rng.normal(size=base.shape), low, high)
        for _ in range(2)
    ]
    labels = rng.permutation(np.arange(num_images) % NUM_CLUSTERS).astype("int32")
    return {
        "view1": views[0].astype("float32"),
        "view2": views[1].astype("float32"),
        "target": base.astype("float32"),
        "label": labels,
    }


def compare(distributed, single):
    distributed = np.asarray(distributed, dtype="float64")
    single = np.asarray(single, dtype="float64")
    abs_diff = float(np.max(np.abs(distributed - single)))
    scale = float(np.max(np.abs(single)))
    return {"max_abs": abs_diff, "max_rel": abs_diff / scale if scale else abs_diff}


def batch_for(model, data):
    """The dict batch `model` takes: the views, and its target or labels."""
    return {key: data[key] for key in model.view_keys}


def tracks_gradient_ratio(model):
    return isinstance(model, kps.PIDModel) and model.track_gradient_ratio


# --- one step's loss and gradients --------------------------------------------


def tf_gradient_ratio(model, batch, y_pred, training):
    """`PIDLoss.gradient_ratio` on this replica's embeddings (0 for SSLModel)."""
    if not tracks_gradient_ratio(model):
        return tf.constant(0.0)
    target = model.target(batch, training)
    return model.ssl_loss.gradient_ratio(y_pred["view1"], y_pred["view2"], target)


def tf_single_step(model, batch, training):
    @tf.function
    @tf.autograph.experimental.do_not_convert  # as Keras' own train step
    def step(batch):
        with tf.GradientTape() as tape:
            y_pred = model(batch, training=training)
            loss = model.compute_loss(x=batch, y_pred=y_pred, training=training)
        grads = tape.gradient(loss, model.trainable_weights)
        return loss, grads, tf_gradient_ratio(model, batch, y_pred, training)

    if tracks_gradient_ratio(model):
        model.grad_ratio_tracker.reset_state()
    loss, grads, ratio = step(batch)
    ratios = {}
    if tracks_gradient_ratio(model):
        ratios = {"direct": [float(ratio)], "metric": float(model.grad_ratio_tracker.result())}
    return float(loss), [g.numpy() for g in grads], ratios


def tf_replica_step(scope, model, batch, training):
    strategy = scope.strategy
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(GLOBAL_BATCH)
    distributed_batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    @tf.autograph.experimental.do_not_convert
    def step(distributed_batch):
        def replica_fn(batch):
            with tf.GradientTape() as tape:
                y_pred = model(batch, training=training)
                loss = model.compute_loss(x=batch, y_pred=y_pred, training=training)
            grads = tape.gradient(loss, model.trainable_weights)
            context = tf.distribute.get_replica_context()
            # What Keras' optimizer applies: the SUM over replicas.
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            local_rows = tf.shape(batch["view1"])[0]
            ratio = tf_gradient_ratio(model, batch, y_pred, training)
            # What Keras' trainer reports: loss * num_replicas.
            return loss * REPLICAS, grads, local_rows, ratio

        return strategy.run(replica_fn, args=(distributed_batch,))

    if tracks_gradient_ratio(model):
        model.grad_ratio_tracker.reset_state()
    loss, grads, local_rows, ratio = step(distributed_batch)
    losses = [float(x) for x in strategy.experimental_local_results(loss)]
    rows = [int(x) for x in strategy.experimental_local_results(local_rows)]
    grads = [strategy.experimental_local_results(g)[0].numpy() for g in grads]
    ratios = {}
    if tracks_gradient_ratio(model):
        # Each replica's ratio, and the metric read across replicas (what fit logs).
        ratios = {
            "direct": [float(x) for x in strategy.experimental_local_results(ratio)],
            "metric": float(model.grad_ratio_tracker.result()),
        }
    return losses, grads, rows, ratios


def jax_step(model, batch, training, distribution):
    import jax

    # What Keras' JAX trainer differentiates (`compute_loss_and_updates`),
    # without an optimizer.
    def loss_fn(trainable, non_trainable, metrics, batch):
        y_pred, non_trainable = model.stateless_call(
            trainable, non_trainable, batch, training=training
        )
        loss, (_, _, metrics) = model.stateless_compute_loss(
            trainable, non_trainable, metrics, x=batch, y_pred=y_pred, training=training
        )
        return loss, metrics

    grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    if distribution is not None:
        batch = {
            key: keras.distribution.distribute_tensor(
                value, distribution.get_data_layout(value.shape)
            )
            for key, value in batch.items()
        }
    if tracks_gradient_ratio(model):
        model.grad_ratio_tracker.reset_state()
    (loss, metrics), grads = grad_fn(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.metrics_variables],
        batch,
    )
    ratios = {}
    if tracks_gradient_ratio(model):
        # The metric's (total, count) after the step, as fit would log it.
        values = {id(v): np.asarray(m) for v, m in zip(model.metrics_variables, metrics)}
        total, count = (values[id(v)] for v in model.grad_ratio_tracker.variables)
        ratios["metric"] = float(total / count)
    shards = (
        sorted(str(s.data.shape) for s in batch["view1"].addressable_shards)
        if distribution is not None
        else None
    )
    return float(loss), [np.asarray(g) for g in grads], shards, ratios


def gradient_report(loss_name, mode, data):
    """mode: 'inference' (BN uses moving statistics) or 'training'."""
    training = mode == "training"
    synchronized_bn = training and BACKEND == "tensorflow"
    keras.utils.set_random_seed(0)
    single = make_model(loss_name, synchronized_bn)
    single.build((None,) + IMAGE_SHAPE)
    initial = single.get_weights()
    batch = batch_for(single, data)
    with kps.distribute.strategy_scope(DISTRIBUTED, devices=DEVICES) as scope:
        replicated = make_model(loss_name, synchronized_bn)
        replicated.build((None,) + IMAGE_SHAPE)
        replicated.set_weights(initial)
        if BACKEND == "tensorflow":
            losses, grads, rows, ratios = tf_replica_step(scope, replicated, batch, training)
            extra = {"replica_losses": losses, "rows_per_replica": rows}
        else:
            loss, grads, shards, ratios = jax_step(replicated, batch, training, scope.distribution)
            losses = [loss]
            extra = {"input_shards": shards}
    if BACKEND == "tensorflow":
        single_loss, single_grads, single_ratios = tf_single_step(single, batch, training)
    else:
        single_loss, single_grads, _, single_ratios = jax_step(single, batch, training, None)
    per_weight = {
        w.path: compare(g, s)
        for w, g, s in zip(single.trainable_weights, grads, single_grads, strict=True)
    }
    if ratios:
        extra["grad_ratio_single"] = single_ratios
        extra["grad_ratio_replicas"] = ratios
        extra["grad_ratio"] = {
            kind: compare(value, np.broadcast_to(single_ratios[kind], np.shape(value)))
            for kind, value in ratios.items()
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
    keras.utils.set_random_seed(0)
    reference = make_model("pid", synchronized_bn)
    reference.build((None,) + IMAGE_SHAPE)
    initial = reference.get_weights()
    batches = batch_for(reference, make_data(4 * GLOBAL_BATCH, seed=1))
    dataset = tf_data.data.Dataset.from_tensor_slices(batches).batch(
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
            (compare(a, b) for a, b in zip(weights, single_weights, strict=True)),
            key=lambda c: c["max_rel"],
        ),
        "weight_change": float(
            max(np.max(np.abs(a - b)) for a, b in zip(single_weights, initial, strict=True))
        ),
    }


# --- batch norm state after the target pass ------------------------------------


def batch_norm_state_report():
    """PIDModel steps that differ only in the target images, 2 replicas and 1 device.

    One `fit` step from the same weights on the same views, once with the
    clean targets and once with the targets mirrored left-right. The target
    pass must put back the batch norm moving statistics it changed, so both
    steps leave the same statistics (those the two online views give), while
    the trainable weights differ (the target is part of the loss).
    """
    import tensorflow as tf_data  # tf.data feeds fit on both backends

    synchronized_bn = BACKEND == "tensorflow"
    keras.utils.set_random_seed(0)
    reference = make_model("pid", synchronized_bn)
    reference.build((None,) + IMAGE_SHAPE)
    initial = reference.get_weights()
    start = [
        np.asarray(w.numpy())
        for w in reference.encoder.non_trainable_weights + reference.projector.non_trainable_weights
    ]
    data = make_data(GLOBAL_BATCH, seed=2)
    targets = {"target": data["target"], "mirrored_target": data["target"][:, :, ::-1].copy()}

    def run(name):
        kwargs = {"devices": DEVICES} if name != "none" else {}
        with kps.distribute.strategy_scope(name, **kwargs) as scope:
            model = make_model("pid", synchronized_bn)
            model.build((None,) + IMAGE_SHAPE)
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
            statistics = model.encoder.non_trainable_weights + model.projector.non_trainable_weights
            results = {}
            for kind, target in targets.items():
                model.set_weights(initial)
                batch = dict(batch_for(model, data), target=target)
                dataset = tf_data.data.Dataset.from_tensor_slices(batch).batch(
                    GLOBAL_BATCH, drop_remainder=True
                )
                model.fit(dataset, epochs=1, verbose=0, shuffle=False)
                results[kind] = {
                    "statistics": [np.asarray(w.numpy()) for w in statistics],
                    "trainable": [np.asarray(w.numpy()) for w in model.trainable_weights],
                }
            return scope.num_replicas, results

    def largest_difference(first, second):
        return float(max(np.max(np.abs(a - b)) for a, b in zip(first, second, strict=True)))

    report = {}
    runs = {"replicas": run(DISTRIBUTED), "single": run("none")}
    for name, (num_replicas, results) in runs.items():
        clean, mirrored = results["target"], results["mirrored_target"]
        report[name] = {
            "num_replicas": num_replicas,
            "num_statistics": len(clean["statistics"]),
            # Exactly 0 when the target pass leaves no state behind.
            "statistics_target_difference": largest_difference(
                clean["statistics"], mirrored["statistics"]
            ),
            # The online views did move the statistics (the check can fail).
            "statistics_change": largest_difference(clean["statistics"], start),
            # The targets do matter to the step.
            "trainable_target_difference": largest_difference(
                clean["trainable"], mirrored["trainable"]
            ),
        }
    replicas, single = runs["replicas"][1]["target"], runs["single"][1]["target"]
    report["statistics_replicas_vs_single"] = max(
        (compare(a, b) for a, b in zip(replicas["statistics"], single["statistics"], strict=True)),
        key=lambda c: c["max_rel"],
    )
    return report


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
    if "bn-state" in parts:
        report["bn_state"] = batch_norm_state_report()
    if "naive" in parts:
        from keras_pid_ssl.losses import base

        base.gather_replicas = lambda z: z
        report["naive"] = {
            f"{name}/training": gradient_report(name, "training", data)
            for name in ("barlow_twins", "vicreg", "pid")
        }
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
