"""Measured float32 matmul FLOP/s of this machine vs the pretraining step's achieved FLOP/s.

Peak: square float32 matmuls (n = 1024, 2048, 4096 by default) through the
current backend's compiled path (`tf.function(jit_compile=True)`, `jax.jit`,
`torch.matmul`) and through NumPy's BLAS, 2 n^3 FLOPs each; the best
repetition of the best size is the "peak". It is measured before and after
the training steps and the larger value is used, so a burst of load from
other processes during one of them does not inflate the ratio.

Achieved: the median step time of `throughput.py`'s measurement
(`train_on_batch` on random views, jit on by default) and the step's FLOPs,
counted analytically as is usual for model-FLOP utilisation:

  * per image, forward: every `Conv2D` (2 * H_out * W_out * k_h * k_w *
    C_in / groups * C_out) and `Dense` (2 * in * out) of the backbone and the
    projector; batch norm, ReLU, pooling and the optimizer update are not
    counted (a few percent);
  * training = 3 x forward (forward, backward to the activations, backward to
    the weights), for both views;
  * PID adds one forward pass (the stop-gradient target view);
  * the loss's matrix products, forward + backward (3x): Barlow Twins' and PID's
    cross-correlation 2 N D^2, VICReg's two covariances 2 x 2 N D^2; PID's
    per-dimension terms are O(N D) and not counted, nor the two extra loss
    gradients of the `pid_grad_ratio` metric (a diagnostic, not training work).

Cross-check of the forward count: on JAX, XLA's own cost analysis of the
compiled backbone + projector forward pass. It also counts element-wise ops
(higher) but skips the zero-padded taps of "same" convolutions (lower; large
on small feature maps, e.g. 30% of a 3x3 conv on a 4x4 map).

Usage (see benchmarks/README.md):

    KERAS_BACKEND=jax python benchmarks/peak_flops.py --backbone=resnet18 --batch=64
"""

import argparse
import os
import time

import _common
import numpy as np
import throughput


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1024,2048,4096", help="Square matmul sizes n.")
    parser.add_argument("--reps", type=int, default=5, help="Timed matmuls per size.")
    parser.add_argument(
        "--backbone",
        default="resnet18",
        choices=("resnet18", "resnet34", "resnet50", "small_convnet"),
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--projector", default="2048,2048,2048")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--optimizer", default="lars", choices=("lars", "sgd", "adamw"))
    parser.add_argument("--methods", default="barlow_twins,pid")
    parser.add_argument("--jit", type=int, default=1, help="jit_compile of the training step.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default results/peak_flops_<backend>_<backbone>_b<batch>.md).",
    )
    return parser.parse_args(argv)


# ------------------------------------------------------------------ peak matmul


def _backend_matmul():
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(tf.matmul, jit_compile=True)
        return "tf.function(jit_compile=True) matmul", fn, lambda x: x.numpy()
    if backend == "jax":
        import jax

        fn = jax.jit(jax.numpy.matmul)
        return "jax.jit matmul", fn, lambda x: x.block_until_ready()
    import torch

    return "torch.matmul", torch.matmul, lambda x: x


def time_matmul(name, fn, sync, n, reps, convert):
    rng = np.random.default_rng(n)
    a = convert(rng.standard_normal((n, n), dtype=np.float32))
    b = convert(rng.standard_normal((n, n), dtype=np.float32))
    sync(fn(a, b))  # compile / warm the caches
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        sync(fn(a, b))
        times.append(time.perf_counter() - start)
    flops = 2.0 * n**3
    return {
        "benchmark": "matmul_float32",
        "impl": name,
        "n": n,
        "reps": reps,
        "best_gflops": flops / min(times) / 1e9,
        "median_gflops": flops / _common.median(times) / 1e9,
    }


def measure_peak(sizes, reps):
    import keras

    name, fn, sync = _backend_matmul()
    records = []
    for n in sizes:
        records.append(time_matmul(name, fn, sync, n, reps, keras.ops.convert_to_tensor))
        records.append(
            time_matmul("numpy matmul (BLAS)", np.matmul, lambda x: x, n, reps, lambda x: x)
        )
    for r in records:
        _common.emit(r)
    return records


# --------------------------------------------------------------- FLOP counting


def _layers(layer):
    import keras

    return [
        l
        for l in layer._flatten_layers(include_self=False)
        if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))
    ]


def forward_flops_per_image(model):
    """Conv2D and Dense FLOPs (multiply-adds x 2) of encoder + projector, per image."""
    import keras

    total = 0
    for layer in _layers(model.encoder) + _layers(model.projector):
        kernel = layer.kernel.shape
        if isinstance(layer, keras.layers.Conv2D):
            _, h_out, w_out, c_out = layer.output.shape
            k_h, k_w, c_in_per_group, _ = kernel
            total += 2 * h_out * w_out * k_h * k_w * c_in_per_group * c_out
        else:
            total += 2 * kernel[0] * kernel[1]
    return int(total)


def train_step_flops(method, model, batch):
    """Counted FLOPs of one training step (see the module docstring)."""
    forward = forward_flops_per_image(model)
    dim = int(
        model.projector.output_dim
        if hasattr(model.projector, "output_dim")
        else _layers(model.projector)[-1].kernel.shape[1]
    )
    network = 3 * 2 * forward * batch
    if method.startswith("pid"):
        network += forward * batch
    matrices = 2 if method == "vicreg" else 1
    loss = 3 * matrices * 2 * batch * dim * dim
    return {
        "forward_flops_per_image": forward,
        "network_flops": network,
        "loss_flops": loss,
        "step_flops": network + loss,
        "embedding_dim": dim,
    }


def xla_forward_flops_per_image(model, image_shape, batch):
    """XLA's cost analysis of the compiled forward pass (JAX backend only)."""
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    def forward(trainable, non_trainable, x):
        features, _ = model.encoder.stateless_call(trainable, non_trainable, x, training=False)
        z, _ = model.projector.stateless_call(
            [v.value for v in model.projector.trainable_variables],
            [v.value for v in model.projector.non_trainable_variables],
            features,
        )
        return z

    x = np.zeros((batch, *image_shape), "float32")
    lowered = jax.jit(forward).lower(
        [v.value for v in model.encoder.trainable_variables],
        [v.value for v in model.encoder.non_trainable_variables],
        x,
    )
    cost = lowered.compile().cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"]) / batch


# ------------------------------------------------------------------------- main


def main(argv=None):
    args = parse_args(argv)
    import keras

    backend = keras.backend.backend()
    info = _common.machine()
    _common.emit({"benchmark": "machine", **info})
    sizes = [int(s) for s in args.sizes.split(",") if s]
    peak_before = measure_peak(sizes, args.reps)

    image_shape = (args.image_size, args.image_size, args.channels)
    step_args = argparse.Namespace(
        backbone=args.backbone,
        projector=args.projector,
        image_size=args.image_size,
        channels=args.channels,
        optimizer=args.optimizer,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
    )
    steps = []
    for method in [m for m in args.methods.split(",") if m]:
        record = throughput.measure_step(method, bool(args.jit), step_args)
        keras.utils.set_random_seed(0)
        model = throughput.build_model(
            method,
            args.backbone,
            throughput._dims(args.projector),
            image_shape,
            args.optimizer,
            bool(args.jit),
        )
        record.update(train_step_flops(method, model, args.batch))
        try:
            record["xla_forward_flops_per_image"] = xla_forward_flops_per_image(
                model, image_shape, min(args.batch, 8)
            )
        except Exception as error:  # a cross-check only: report, do not fail
            record["xla_forward_flops_per_image"] = f"unavailable: {error}"[:200]
        record["achieved_gflops"] = record["step_flops"] / record["median_step_s"] / 1e9
        steps.append(record)
    peak_after = measure_peak(sizes, args.reps)

    best = {}
    for r in peak_before + peak_after:
        best[r["impl"]] = max(best.get(r["impl"], 0.0), r["best_gflops"])
    backend_impl = [k for k in best if not k.startswith("numpy")][0]
    peak = max(best.values())
    for r in steps:
        r["peak_gflops"] = peak
        r["fraction_of_peak"] = r["achieved_gflops"] / peak
        _common.emit(
            {
                k: r[k]
                for k in (
                    "benchmark",
                    "backend",
                    "method",
                    "backbone",
                    "batch",
                    "jit_compile",
                    "median_step_s",
                    "step_flops",
                    "forward_flops_per_image",
                    "xla_forward_flops_per_image",
                    "achieved_gflops",
                    "peak_gflops",
                    "fraction_of_peak",
                )
            }
        )

    matmul_rows = []
    for before, after in zip(peak_before, peak_after, strict=True):
        matmul_rows.append(
            [
                before["impl"],
                before["n"],
                f"{before['best_gflops']:.1f}",
                f"{before['median_gflops']:.1f}",
                f"{after['best_gflops']:.1f}",
                f"{after['median_gflops']:.1f}",
            ]
        )
    step_rows = []
    for r in steps:
        xla = r["xla_forward_flops_per_image"]
        step_rows.append(
            [
                r["method"],
                r["jit_compile"],
                f"{r['forward_flops_per_image'] / 1e6:.1f}",
                f"{xla / 1e6:.1f}" if isinstance(xla, float) else "n/a",
                f"{r['step_flops'] / 1e9:.1f}",
                f"{r['median_step_s']:.3f}",
                f"{r['achieved_gflops']:.1f}",
                f"{100 * r['fraction_of_peak']:.1f}%",
            ]
        )
    text = "\n".join(
        [
            f"# Achieved vs peak float32 FLOP/s: {args.backbone}, projector {args.projector}, "
            f"batch {args.batch}, {args.image_size}x{args.image_size}x{args.channels}",
            "",
            _common.machine_line(info),
            "",
            f"Command: `{_common.command_line()}`",
            "",
            "Square float32 matmuls, 2 n^3 FLOPs; best and median of "
            f"{args.reps} repetitions, measured before and after the training steps:",
            "",
            _common.markdown_table(
                [
                    "implementation",
                    "n",
                    "best GFLOP/s (before)",
                    "median GFLOP/s (before)",
                    "best GFLOP/s (after)",
                    "median GFLOP/s (after)",
                ],
                matmul_rows,
            ),
            "",
            f"Peak used below: {peak:.1f} GFLOP/s (best of all rows; {backend_impl}: "
            f"{best[backend_impl]:.1f}).",
            "",
            f"Training step: median of {args.steps} `train_on_batch` steps after {args.warmup} "
            "warm-up steps (random views, no input pipeline); counted FLOPs per the script's "
            "docstring (conv + dense + the loss's matrix products; 3x forward for training; PID's "
            "target forward included, its diagnostic gradient-ratio passes not). The XLA column "
            "is XLA's own count of the forward pass (JAX only; adds element-wise ops, skips "
            "zero-padded conv taps).",
            "",
            _common.markdown_table(
                [
                    "method",
                    "jit_compile",
                    "forward MFLOP/image (counted)",
                    "forward MFLOP/image (XLA)",
                    "GFLOP/step",
                    "median step (s)",
                    "achieved GFLOP/s",
                    "of peak",
                ],
                step_rows,
            ),
            "",
            "The machine is shared with other jobs: both numbers are depressed by their load; "
            "the ratio is measured within one run.",
            "",
        ]
    )
    output = args.output or os.path.join(
        _common.RESULTS_DIR, f"peak_flops_{backend}_{args.backbone}_b{args.batch}.md"
    )
    _common.write_text(output, text)


if __name__ == "__main__":
    main()
