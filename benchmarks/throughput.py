"""Pretraining throughput (pairs/s), peak memory, and the cost of the loss alone.

Part 1, the training step. For each method (Barlow Twins, VICReg, PID) and
each `jit_compile` setting, a fresh subprocess builds the backbone and the
projector of the recipe (`kps.training.build_backbone`, `kps.presets.get`,
`kps.training.build_optimizer`), compiles the model and calls
`model.train_on_batch` on fixed random views in [0, 1] (the input pipeline is
excluded: `benchmarks/input_pipeline.py` measures it). `train_on_batch`
returns NumPy logs, so every timed call includes the device work. The first
`--warmup` steps (tracing, compilation) are discarded; the figure is the
median of the next `--steps` step times. A "pair" is one image's two views
(PID also runs a stop-gradient forward pass on the target view).

Peak memory is the process's peak resident set size (`getrusage` `ru_maxrss`)
at the end of the timed steps, in a process that did nothing else, together
with the resident size just before the first step (model, optimizer and
views built); their difference is what the training step itself added
(activations, gradients, optimizer slots, compiled code). It is host memory:
all three backends run on the CPU here. tracemalloc is not used: it sees only
Python allocations, not the backends' tensors.

Part 2, the loss alone: forward + backward (`keras_pid_ssl.utils.autodiff.gradient`)
of `BarlowTwinsLoss` and `PIDLoss` (the `pid` preset's default coefficients,
Barlow Twins base) on random (N, D) embeddings, D = 128 ... 8192, compiled
where the backend compiles (`tf.function(jit_compile=True)`, `jax.jit`;
eager on torch), median of `--loss_reps` calls after one warm-up call.

Usage (see benchmarks/README.md):

    KERAS_BACKEND=jax python benchmarks/throughput.py --backbone=resnet18 --batch=256
"""

import argparse
import json
import os
import subprocess
import sys
import time

import _common
import numpy as np

METHODS = ("barlow_twins", "vicreg", "pid", "pid_no_ratio")
LOSS_METHODS = ("barlow_twins", "vicreg", "pid")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backbone",
        default="resnet18",
        choices=("resnet18", "resnet34", "resnet50", "small_convnet"),
    )
    parser.add_argument("--batch", type=int, default=256, help="Images per step (pairs).")
    parser.add_argument("--projector", default="2048,2048,2048", help="Projector widths.")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--optimizer", default="lars", choices=("lars", "sgd", "adamw"))
    parser.add_argument(
        "--methods",
        default="barlow_twins,vicreg,pid",
        help="Comma list of " + ", ".join(METHODS) + " ('pid_no_ratio' is PID "
        "without the diagnostic gradient-ratio metric).",
    )
    parser.add_argument(
        "--jit",
        default="both",
        choices=("both", "on", "off"),
        help="jit_compile settings to measure.",
    )
    parser.add_argument("--warmup", type=int, default=2, help="Discarded steps (compilation).")
    parser.add_argument("--steps", type=int, default=10, help="Timed steps.")
    parser.add_argument("--skip_steps", action="store_true", help="Only the loss-cost sweep.")
    parser.add_argument("--skip_loss", action="store_true", help="Only the training step.")
    parser.add_argument("--loss_dims", default="128,256,512,1024,2048,4096,8192")
    parser.add_argument("--loss_batch", type=int, default=256)
    parser.add_argument("--loss_methods", default="barlow_twins,pid")
    parser.add_argument("--loss_reps", type=int, default=5)
    parser.add_argument(
        "--mode",
        default="isolated",
        choices=("isolated", "interleaved"),
        help="isolated: one process per method and jit setting (peak RSS per "
        "row); interleaved: one process per jit setting that alternates the "
        "methods' steps round-robin, so load from other processes hits every "
        "method alike (better ratios on a shared machine; RSS is per process).",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=1800,
        help="Seconds per training-step configuration (subprocess).",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown file (default results/throughput_<backend>_<backbone>_b<batch>.md).",
    )
    parser.add_argument(
        "--loss_output",
        default=None,
        help="Markdown file (default results/loss_cost_<backend>.md).",
    )
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _dims(text):
    return tuple(int(d) for d in text.split(",") if d)


# ---------------------------------------------------------------- training step


def build_model(
    method,
    backbone,
    projector_dims,
    image_shape,
    optimizer="lars",
    jit_compile=False,
    total_steps=1000,
):
    """The recipe's model for `method`, compiled as `kps.training.pretrain` does."""
    import keras_pid_ssl as kps

    encoder = kps.training.build_backbone(backbone, image_shape)
    kwargs = dict(projector_dims=tuple(projector_dims))
    name = method
    if method == "pid_no_ratio":
        name, kwargs["track_gradient_ratio"] = "pid", False
    model = kps.presets.get(name, encoder, **kwargs)
    defaults = kps.config.OPTIMIZER_DEFAULTS[optimizer]
    model.compile(
        optimizer=kps.training.build_optimizer(
            optimizer, defaults["lr"], defaults["weight_decay"], total_steps, 10
        ),
        jit_compile=jit_compile,
    )
    return model


def random_views(method, batch, image_shape, seed=0):
    """A fixed batch of float32 views in [0, 1]: two, plus the target view for PID."""
    rng = np.random.default_rng(seed)
    keys = ("view1", "view2", "target") if method.startswith("pid") else ("view1", "view2")
    return {key: rng.uniform(size=(batch, *image_shape)).astype("float32") for key in keys}


def time_train_steps(model, views, steps, warmup):
    """Wall time of each `train_on_batch` call (logs come back as NumPy, so synced)."""
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        logs = model.train_on_batch(views, return_dict=True)
        times.append(time.perf_counter() - start)
    if not np.isfinite(float(logs["loss"])):
        raise FloatingPointError(f"non-finite loss after the timed steps: {logs['loss']}")
    return times[:warmup], times[warmup:]


def measure_step(method, jit_compile, args):
    """One configuration in this process: pairs/s and memory."""
    import keras

    image_shape = (args.image_size, args.image_size, args.channels)
    keras.utils.set_random_seed(0)
    model = build_model(
        method, args.backbone, _dims(args.projector), image_shape, args.optimizer, jit_compile
    )
    views = random_views(method, args.batch, image_shape)
    rss_before = _common.current_rss_mib()
    warm, timed = time_train_steps(model, views, args.steps, args.warmup)
    step = _common.median(timed)
    return {
        "benchmark": "train_step",
        "backend": keras.backend.backend(),
        "method": method,
        "backbone": args.backbone,
        "batch": args.batch,
        "projector": args.projector,
        "image_shape": list(image_shape),
        "jit_compile": jit_compile,
        "params": int(model.count_params()),
        "median_step_s": step,
        "min_step_s": min(timed),
        "max_step_s": max(timed),
        "first_step_s": warm[0] if warm else None,
        "pairs_per_s": args.batch / step,
        "rss_before_steps_mib": rss_before,
        "peak_rss_mib": _common.max_rss_mib(),
        "timed_steps": len(timed),
    }


def measure_interleaved(methods, jit_compile, args):
    """All `methods` in this process; timed steps alternate between them."""
    import keras

    image_shape = (args.image_size, args.image_size, args.channels)
    runs = []
    for method in methods:
        keras.utils.set_random_seed(0)
        model = build_model(
            method, args.backbone, _dims(args.projector), image_shape, args.optimizer, jit_compile
        )
        views = random_views(method, args.batch, image_shape)
        warm, _ = time_train_steps(model, views, 0, max(args.warmup, 1))
        runs.append((method, model, views, warm, []))
    for _ in range(args.steps):
        for _, model, views, _, timed in runs:
            timed += time_train_steps(model, views, 1, 0)[1]
    records = []
    for method, model, _, warm, timed in runs:
        step = _common.median(timed)
        records.append(
            {
                "benchmark": "train_step",
                "mode": "interleaved",
                "backend": keras.backend.backend(),
                "method": method,
                "backbone": args.backbone,
                "batch": args.batch,
                "projector": args.projector,
                "image_shape": list(image_shape),
                "jit_compile": jit_compile,
                "params": int(model.count_params()),
                "median_step_s": step,
                "min_step_s": min(timed),
                "max_step_s": max(timed),
                "first_step_s": warm[0],
                "pairs_per_s": args.batch / step,
                "rss_before_steps_mib": None,
                "peak_rss_mib": _common.max_rss_mib(),
                "timed_steps": len(timed),
            }
        )
    return records


def run_subprocess(single, args, labels):
    """`--single=<single>` in a fresh process; returns its JSON records."""
    argv = [a for a in sys.argv[1:] if not a.startswith("--single")]
    command = [sys.executable, os.path.abspath(__file__), *argv, f"--single={single}"]
    error = None
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        records = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
        if records:
            return records
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        error = f"exit {proc.returncode}: " + " | ".join(tail)
    except subprocess.TimeoutExpired:
        error = f"timed out after {args.timeout} s"
    return [{"benchmark": "train_step", **label, "error": error} for label in labels]


def jit_settings(choice):
    """Every backend accepts `jit_compile`: XLA on TensorFlow, `jax.jit` on JAX
    (off: op-by-op eager JAX), `torch.compile` on torch."""
    return {"both": (False, True), "on": (True,), "off": (False,)}[choice]


def _mib(value):
    return "n/a" if value is None or value != value else f"{value:.0f}"


def step_table(records, info, args):
    header = [
        "method",
        "jit_compile",
        "pairs/s",
        "median step (s)",
        "min-max step (s)",
        "first step (s)",
        "RSS before (MiB)",
        "peak RSS (MiB)",
        "params",
    ]
    rows = []
    base = {
        r["jit_compile"]: r
        for r in records
        if r.get("method") == "barlow_twins" and "error" not in r
    }
    for r in records:
        if "error" in r:
            rows.append(
                [
                    r["method"],
                    r["jit_compile"],
                    "failed: " + r["error"][:120],
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
            continue
        rel = ""
        if r["jit_compile"] in base and r["method"] != "barlow_twins":
            bt = base[r["jit_compile"]]
            rel = (
                f" ({r['pairs_per_s'] / bt['pairs_per_s']:.2f}x BT; min step: "
                f"{bt['min_step_s'] / r['min_step_s']:.2f}x)"
            )
        rows.append(
            [
                r["method"],
                r["jit_compile"],
                f"{r['pairs_per_s']:.1f}{rel}",
                f"{r['median_step_s']:.3f}",
                f"{r['min_step_s']:.3f}-{r['max_step_s']:.3f}",
                f"{r['first_step_s']:.1f}",
                _mib(r["rss_before_steps_mib"]),
                _mib(r["peak_rss_mib"]),
                f"{r['params']:,}",
            ]
        )
    return "\n".join(
        [
            f"# Pretraining throughput: {args.backbone}, projector {args.projector}, "
            f"batch {args.batch}, {args.image_size}x{args.image_size}x{args.channels}, "
            f"{args.optimizer}",
            "",
            _common.machine_line(info),
            "",
            f"Command: `{_common.command_line()}`",
            "",
            f"Median of {args.steps} `train_on_batch` steps after {args.warmup} discarded "
            "warm-up steps, random views (no input pipeline). A pair is one image's two views; "
            "PID also runs a stop-gradient forward pass on the target view, and `pid` (default "
            "`track_gradient_ratio=True`) differentiates the loss twice more for its "
            "`pid_grad_ratio` metric (`pid_no_ratio` turns that off). "
            + (
                "One fresh process per row. RSS: host resident memory (MiB) just before the first "
                "step and the process's peak (`ru_maxrss`) after the timed steps. "
                if args.mode == "isolated"
                else "Interleaved: one process per jit setting builds every method and alternates "
                "their steps round-robin, so other processes' load hits all methods alike; "
                "peak RSS is that whole process's. "
            )
            + "The machine is shared, so absolute numbers are noisy; compare rows of one run. "
            "`x BT`: throughput relative to Barlow Twins at the same jit setting, from the median "
            "step and from the fastest (least disturbed) step.",
            "",
            _common.markdown_table(header, rows),
            "",
        ]
    )


# ------------------------------------------------------------------- loss alone


def make_loss(method):
    import keras_pid_ssl as kps

    if method == "barlow_twins":
        return kps.losses.BarlowTwinsLoss()
    if method == "vicreg":
        return kps.losses.VICRegLoss()
    return kps.losses.PIDLoss()  # the `pid` preset's defaults (Barlow Twins base)


def loss_gradient_fn(method, target, jit):
    """A function z -> d loss / d z for z = stack([z1, z2]), compiled if `jit`."""
    import keras

    from keras_pid_ssl.utils.autodiff import gradient

    loss = make_loss(method)
    if method == "pid":

        def value(z):
            return loss(z[0], z[1], target)
    else:

        def value(z):
            return loss(z[0], z[1])

    def grad(z):
        return gradient(value, z)

    backend = keras.backend.backend()
    if jit and backend == "tensorflow":
        import tensorflow as tf

        return tf.function(grad, jit_compile=True)
    if jit and backend == "jax":
        import jax

        return jax.jit(grad)
    return grad


def _sync(x):
    if hasattr(x, "block_until_ready"):
        x.block_until_ready()
    else:
        np.asarray(x.detach() if hasattr(x, "detach") else x)


def measure_losses(methods, dim, batch, reps, jit):
    """Every method's loss gradient at width `dim`, repetitions interleaved."""
    import keras

    rng = np.random.default_rng(dim)
    z = keras.ops.convert_to_tensor(rng.normal(size=(2, batch, dim)).astype("float32"))
    target = keras.ops.convert_to_tensor(rng.normal(size=(batch, dim)).astype("float32"))
    fns, first, times = {}, {}, {method: [] for method in methods}
    for method in methods:
        fns[method] = loss_gradient_fn(method, target, jit)
        start = time.perf_counter()
        _sync(fns[method](z))
        first[method] = time.perf_counter() - start
    # Round-robin, so a burst of load from other processes hits every method.
    for _ in range(reps):
        for method in methods:
            start = time.perf_counter()
            _sync(fns[method](z))
            times[method].append(time.perf_counter() - start)
    return [
        {
            "benchmark": "loss_forward_backward",
            "backend": keras.backend.backend(),
            "method": method,
            "dim": dim,
            "batch": batch,
            "compiled": jit,
            "median_ms": 1e3 * _common.median(times[method]),
            "min_ms": 1e3 * min(times[method]),
            "first_call_ms": 1e3 * first[method],
            "reps": reps,
        }
        for method in methods
    ]


def loss_table(records, info, args, compiled):
    methods = [m for m in args.loss_methods.split(",") if m]
    by_key = {(r["method"], r["dim"]): r for r in records}
    header = ["D"] + [f"{m} median (min) ms" for m in methods]
    if compiled:
        compiled_text = "compiled: " + (
            "XLA tf.function" if info["backend"] == "tensorflow" else "jax.jit"
        )
    else:
        compiled_text = "eager"
    if "barlow_twins" in methods:
        header += [f"{m} / barlow_twins (min)" for m in methods if m != "barlow_twins"]
    rows = []
    for dim in _dims(args.loss_dims):
        row = [dim] + [
            f"{by_key[(m, dim)]['median_ms']:.2f} ({by_key[(m, dim)]['min_ms']:.2f})"
            for m in methods
        ]
        if "barlow_twins" in methods:
            bt = by_key[("barlow_twins", dim)]["min_ms"]
            row += [
                f"{by_key[(m, dim)]['min_ms'] / bt:.2f}" for m in methods if m != "barlow_twins"
            ]
        rows.append(row)
    return "\n".join(
        [
            f"# Loss alone, forward + backward, batch N={args.loss_batch}",
            "",
            _common.machine_line(info),
            "",
            f"Command: `{_common.command_line()}`",
            "",
            f"Gradient of the loss with respect to both views' embeddings (N, D) "
            f"({compiled_text}), median of {args.loss_reps} calls per method after one warm-up "
            "call, the methods' calls alternating (round-robin) so that load from other "
            "processes hits all alike. Ratios use the minimum (the least disturbed call). "
            "`pid` is `PIDLoss()` (the preset's coefficients, Barlow Twins base, diagonal "
            "estimator): its PID terms cost O(N D) on top of the base's O(N D^2) "
            "cross-correlation. Inside `PIDModel` the default `track_gradient_ratio=True` "
            "differentiates the loss twice more per step (a metric).",
            "",
            _common.markdown_table(header, rows),
            "",
        ]
    )


# ------------------------------------------------------------------------- main


def main(argv=None):
    args = parse_args(argv)
    if args.single:
        methods, jit = args.single.split(":")
        if "," in methods:
            for record in measure_interleaved(methods.split(","), bool(int(jit)), args):
                _common.emit(record)
        else:
            _common.emit(measure_step(methods, bool(int(jit)), args))
        return
    import keras

    backend = keras.backend.backend()
    info = _common.machine()
    _common.emit({"benchmark": "machine", **info})
    if not args.skip_steps:
        methods = [m for m in args.methods.split(",") if m]
        for method in methods:
            if method not in METHODS:
                raise ValueError(f"--methods: unknown {method!r}; expected some of {METHODS}")
        records = []
        for jit in jit_settings(args.jit):
            groups = [methods] if args.mode == "interleaved" else [[m] for m in methods]
            for group in groups:
                labels = [{"method": m, "jit_compile": jit} for m in group]
                for record in run_subprocess(f"{','.join(group)}:{int(jit)}", args, labels):
                    _common.emit(record)
                    records.append(record)
        records.sort(key=lambda r: (methods.index(r["method"]), r["jit_compile"]))
        output = args.output or os.path.join(
            _common.RESULTS_DIR, f"throughput_{backend}_{args.backbone}_b{args.batch}.md"
        )
        _common.write_text(output, step_table(records, info, args))
    if not args.skip_loss:
        compiled = backend in ("tensorflow", "jax")
        records = []
        loss_methods = [m for m in args.loss_methods.split(",") if m]
        for method in loss_methods:
            if method not in LOSS_METHODS:
                raise ValueError(f"--loss_methods: unknown {method!r}; expected {LOSS_METHODS}")
        for dim in _dims(args.loss_dims):
            for record in measure_losses(
                loss_methods, dim, args.loss_batch, args.loss_reps, compiled
            ):
                _common.emit(record)
                records.append(record)
        output = args.loss_output or os.path.join(_common.RESULTS_DIR, f"loss_cost_{backend}.md")
        _common.write_text(output, loss_table(records, info, args, compiled))


if __name__ == "__main__":
    main()
