"""Linear-evaluation accuracy on the real Fashion-MNIST: PID vs Barlow Twins vs VICReg.

Every method gets the same budget (backbone, projector, epochs, batch,
optimizer, training images: flags below, documented in the output). Each run
is `kps.training.pretrain` (what `recipes/pretrain_cifar.py` runs, with its
online linear probe and kNN monitor) followed by
`kps.evaluation.linear_eval` on the run's `backbone.keras` (logistic
regression on standardised frozen features of the first `--eval_train_subset`
training images, top-1/top-5 on the first `--eval_test_subset` test images).

Floors, through the same `linear_eval`:
  * `random_init`: the same backbone architecture, randomly initialised
    (`kps.training.build_backbone` under the run's seed), not trained;
  * `raw_pixels`: a `Flatten` "backbone", i.e. logistic regression on the
    standardised raw pixels (deterministic: one run).

Runs go to `--runs_dir/<tag>/seed<k>/`; a finished run (its `result.json`
with the same configuration) is reused, so an interrupted benchmark
continues where it stopped. Seeds are interleaved across methods (all methods
at seed 0, then seed 1, ...) so a partial run is still balanced. Writes
`results/fashion_mnist.md`, `results/fashion_mnist.json` (per-run numbers)
and `results/fashion_mnist_probe.png` (online-probe accuracy vs epoch, mean
and spread over seeds, from each run's `summary.json` `probe_history`).

Usage (see benchmarks/README.md):

    KERAS_BACKEND=tensorflow python benchmarks/quality_fashion_mnist.py --seeds=3
"""

import argparse
import json
import os
import shutil
import time

import _common

METHODS = ("pid", "barlow_twins", "vicreg")
FLOORS = ("random_init", "raw_pixels")
LABELS = {
    "pid": "PID (default preset)",
    "barlow_twins": "Barlow Twins",
    "vicreg": "VICReg",
    "random_init": "floor: random-init encoder",
    "raw_pixels": "floor: raw pixels",
}
# Arguments of kps.training.pretrain that a sweep may override for PID.
PID_OPTIONS = (
    "units",
    "w_joint",
    "w_red",
    "w_syn",
    "invariance_weight",
    "target_momentum",
    "target_view",
    "base",
    "pid_warmup_epochs",
    "pid_transition_epochs",
)


def add_budget_flags(parser):
    """The flags that fix the budget (shared with `sweep_pid.py`)."""
    parser.add_argument(
        "--backbone",
        default="small_convnet",
        choices=("small_convnet", "resnet18", "resnet34", "resnet50"),
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--optimizer", default="adamw", choices=("adamw", "lars", "sgd"))
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Base LR per 256 images (default: the optimizer's in kps.training).",
    )
    parser.add_argument("--warmup_epochs", type=int, default=1, help="Learning-rate warm-up.")
    parser.add_argument("--projector_dims", default="512,512")
    parser.add_argument(
        "--train_subset",
        type=int,
        default=10000,
        help="Pretrain on the first N training images (0: all 60,000).",
    )
    parser.add_argument(
        "--probe_subset",
        type=int,
        default=2000,
        help="Images of the online probe's / kNN's train and test subsets.",
    )
    parser.add_argument(
        "--knn_every",
        type=int,
        default=0,
        help="kNN monitor every N epochs (0: only at the last epoch).",
    )
    parser.add_argument(
        "--monitor_size",
        type=int,
        default=0,
        help="PID runs: images of the PIDMonitor batch (0: off, saves time).",
    )
    parser.add_argument(
        "--eval_train_subset",
        type=int,
        default=None,
        help="Linear eval: first N training images (default: --train_subset).",
    )
    parser.add_argument(
        "--eval_test_subset",
        type=int,
        default=10000,
        help="Linear eval: first N test images (0: all 10,000).",
    )
    parser.add_argument("--seeds", type=int, default=3, help="Seeds 0..N-1 per method.")
    parser.add_argument(
        "--runs_dir",
        default=os.path.join(_common.REPO_ROOT, "runs", "benchmarks"),
        help="Where runs (checkpoints, summaries) go; git-ignored.",
    )
    parser.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity.")
    return parser


def budget(args):
    """The configuration every method shares (recorded with each result)."""
    return {
        "dataset": "fashion_mnist",
        "backbone": args.backbone,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "warmup_epochs": args.warmup_epochs,
        "projector_dims": [int(d) for d in args.projector_dims.split(",")],
        "train_subset": args.train_subset or None,
        "probe_subset": args.probe_subset,
        "knn_every": args.knn_every or args.epochs,
        "monitor_size": args.monitor_size,
        "eval_train_subset": args.eval_train_subset or args.train_subset or None,
        "eval_test_subset": args.eval_test_subset or None,
    }


def budget_text(args):
    b = budget(args)
    images = b["train_subset"] or 60000
    steps = images // b["batch_size"]
    return (
        f"Budget (identical for every method): backbone `{b['backbone']}`, projector "
        f"{'-'.join(map(str, b['projector_dims']))}, {b['epochs']} epochs over the first "
        f"{images:,} Fashion-MNIST training images ({steps} steps of batch {b['batch_size']} per "
        f"epoch), optimizer `{b['optimizer']}` (base LR "
        f"{b['lr'] if b['lr'] is not None else 'default'} per 256 images, {b['warmup_epochs']} "
        f"warm-up epoch(s), cosine decay), `grayscale` augmentation preset. PID uses the default "
        "protocol of `kps.training.pretrain` (`PIDProtocol`: warm-up and transition of "
        "round(0.1 x epochs) epochs each). Linear evaluation: `kps.evaluation.linear_eval` "
        f"(L-BFGS logistic regression, C=1, on standardised frozen features of the first "
        f"{b['eval_train_subset'] or 60000:,} training images; top-1 on the first "
        f"{b['eval_test_subset'] or 10000:,} test images). Online probe and kNN: "
        f"{b['probe_subset']:,} training / {b['probe_subset']:,} test images."
    )


def _load_cached(run_dir, config):
    path = os.path.join(run_dir, "result.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        result = json.load(f)
    return result if result.get("config") == config else None


def _save(run_dir, result):
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=2)


def _fresh_dir(run_dir):
    """An empty run folder (a stale run of another configuration is removed)."""
    if os.path.exists(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)


def _linear_eval(backbone_path, config):
    import keras_pid_ssl as kps

    return kps.evaluation.linear_eval(
        backbone_path,
        "fashion_mnist",
        train_subset=config["eval_train_subset"],
        test_subset=config["eval_test_subset"],
    )


def pretrain_and_evaluate(method, seed, args, tag=None, **overrides):
    """Pretrains `method` under the budget, then linear-evaluates it.

    `overrides` are extra `kps.training.pretrain` arguments (PID settings of
    the sweep). Returns a dict with `top1`, `top5`, `probe_history` and the
    final monitor metrics; reuses a finished run of the same configuration.
    """
    import keras_pid_ssl as kps

    unknown = set(overrides) - set(PID_OPTIONS)
    if unknown:
        raise ValueError(f"Unknown PID overrides {sorted(unknown)}; expected some of {PID_OPTIONS}")
    config = {**budget(args), "method": method, "seed": seed, "overrides": overrides}
    run_dir = os.path.join(args.runs_dir, tag or method, f"seed{seed}")
    cached = _load_cached(run_dir, config)
    if cached is not None:
        return cached
    _fresh_dir(run_dir)
    start = time.time()
    summary = kps.training.pretrain(
        run_dir,
        dataset="fashion_mnist",
        method=method,
        backbone=config["backbone"],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        optimizer=config["optimizer"],
        lr=config["lr"],
        warmup_epochs=config["warmup_epochs"],
        projector_dims=tuple(config["projector_dims"]),
        seed=seed,
        train_subset=config["train_subset"],
        probe_subset=config["probe_subset"],
        knn_every=config["knn_every"],
        monitor_size=config["monitor_size"],
        export=False,
        verbose=args.verbose,
        **overrides,
    )
    pretrain_time = time.time() - start
    linear = _linear_eval(os.path.join(run_dir, "backbone.keras"), config)
    final = summary["final_metrics"]
    result = {
        "config": config,
        "method": method,
        "tag": tag or method,
        "seed": seed,
        "top1": linear["top1"],
        "top5": linear["top5"],
        "probe_accuracy": final.get("probe_accuracy"),
        "knn_accuracy": final.get("knn_accuracy"),
        "final_loss": final.get("loss"),
        "final_synergy": final.get("synergy"),
        "final_redundancy": final.get("redundancy"),
        "probe_history": summary["probe_history"],
        "pretrain_s": pretrain_time,
        "linear_eval_s": linear["wall_time_s"],
    }
    _save(run_dir, result)
    return result


def evaluate_floor(floor, seed, args):
    """Linear eval of an untrained encoder (`random_init`) or of raw pixels."""
    import keras

    import keras_pid_ssl as kps

    config = {**budget(args), "method": floor, "seed": seed, "overrides": {}}
    run_dir = os.path.join(args.runs_dir, floor, f"seed{seed}")
    cached = _load_cached(run_dir, config)
    if cached is not None:
        return cached
    _fresh_dir(run_dir)
    keras.utils.set_random_seed(seed)
    input_shape = tuple(kps.data.load("fashion_mnist", "test")[0].shape[1:])
    if floor == "random_init":
        encoder = kps.training.build_backbone(config["backbone"], input_shape)
    else:
        encoder = keras.Sequential([keras.Input(input_shape), keras.layers.Flatten()])
    path = os.path.join(run_dir, "backbone.keras")
    encoder.save(path)
    linear = _linear_eval(path, config)
    result = {
        "config": config,
        "method": floor,
        "tag": floor,
        "seed": seed,
        "top1": linear["top1"],
        "top5": linear["top5"],
        "linear_eval_s": linear["wall_time_s"],
    }
    _save(run_dir, result)
    return result


def _pct(values):
    mean, std = _common.mean_std(values)
    return "n/a" if mean != mean else f"{100 * mean:.2f} ± {100 * std:.2f}"


def summary_rows(results, tags, labels=None):
    """Rows: label, linear top-1, top-5, probe, kNN, seeds, minutes per run."""
    rows = []
    for tag in tags:
        runs = [r for r in results if r["tag"] == tag]
        if not runs:
            continue
        minutes = [r["pretrain_s"] / 60 for r in runs if "pretrain_s" in r]
        rows.append(
            [
                (labels or LABELS).get(tag, tag),
                _pct([r["top1"] for r in runs]),
                _pct([r["top5"] for r in runs]),
                _pct([r.get("probe_accuracy") for r in runs]),
                _pct([r.get("knn_accuracy") for r in runs]),
                len(runs),
                f"{_common.mean_std(minutes)[0]:.1f}" if minutes else "-",
            ]
        )
    return rows


SUMMARY_HEADER = [
    "method",
    "linear top-1 %",
    "linear top-5 %",
    "online probe top-1 % (last epoch)",
    "kNN top-1 % (last epoch)",
    "seeds",
    "pretrain min/run",
]


def per_seed_rows(results, tags, labels=None):
    rows = []
    for tag in tags:
        for r in sorted((r for r in results if r["tag"] == tag), key=lambda r: r["seed"]):
            probe = r.get("probe_accuracy")
            knn = r.get("knn_accuracy")
            rows.append(
                [
                    (labels or LABELS).get(tag, tag),
                    r["seed"],
                    f"{100 * r['top1']:.2f}",
                    "-" if probe is None else f"{100 * probe:.2f}",
                    "-" if knn is None else f"{100 * knn:.2f}",
                ]
            )
    return rows


def plot_probe_curves(results, tags, path, labels=None):
    """Online-probe top-1 vs epoch per tag (mean over seeds, min-max band).

    The floors are not drawn: they come from `linear_eval` (all training
    features, L-BFGS), a stronger protocol than the online probe.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for tag in tags:
        curves = [r["probe_history"] for r in results if r["tag"] == tag and r.get("probe_history")]
        if not curves:
            continue
        epochs = sorted(set.intersection(*[{row["epoch"] for row in c} for c in curves]))
        values = (
            np.array(
                [
                    [next(row["probe_accuracy"] for row in c if row["epoch"] == e) for e in epochs]
                    for c in curves
                ]
            )
            * 100
        )
        (line,) = ax.plot(
            epochs,
            values.mean(0),
            marker="o",
            label=f"{(labels or LABELS).get(tag, tag)} (n={len(curves)})",
        )
        if len(curves) > 1:
            ax.fill_between(epochs, values.min(0), values.max(0), alpha=0.2, color=line.get_color())
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("online linear probe top-1 (%)")
    ax.set_title("Fashion-MNIST: online probe during pretraining")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _run_minutes(results):
    return sum(r.get("pretrain_s", 0.0) + r.get("linear_eval_s", 0.0) for r in results) / 60


def write_report(results, args, info, started, path_md, path_json, path_png, methods, floors):
    tags = list(methods) + list(floors)
    plot_probe_curves(results, methods, path_png)
    text = "\n".join(
        [
            "# Fashion-MNIST linear evaluation: PID vs Barlow Twins vs VICReg",
            "",
            _common.machine_line(info),
            f"Compute time of the runs: {_run_minutes(results):.1f} min "
            "(pretraining + linear evaluation, summed); "
            f"this invocation: {(time.time() - started) / 60:.1f} min "
            "(finished runs of an earlier invocation are reused).",
            "",
            f"Command: `{_common.command_line()}`",
            "",
            budget_text(args),
            "",
            "Mean ± sample standard deviation over seeds. `linear top-1` is the headline "
            "(`kps.evaluation.linear_eval`); the online probe and kNN columns are the "
            "pretraining monitors at the last epoch (smaller subsets, see above). The floors use "
            "the same linear evaluation; `raw pixels` is deterministic (one run). This is a short "
            "budget on a shared 2-core CPU: it ranks the methods at this budget only, not at "
            "convergence.",
            "",
            _common.markdown_table(SUMMARY_HEADER, summary_rows(results, tags)),
            "",
            "Per seed:",
            "",
            _common.markdown_table(
                ["method", "seed", "linear top-1 %", "probe top-1 %", "kNN top-1 %"],
                per_seed_rows(results, tags),
            ),
            "",
            f"![online probe vs epoch]({os.path.basename(path_png)})",
            "",
            "The online probe (`kps.callbacks.OnlineLinearProbe`: a linear layer trained a few "
            "passes per epoch on the probe subset) is a trend monitor; it sits well below the "
            "linear evaluation, which fits logistic regression to convergence on all evaluation "
            "features.",
            "",
        ]
    )
    _common.write_text(path_md, text)
    slim = [{k: v for k, v in r.items()} for r in results]
    _common.write_text(
        path_json, json.dumps({"machine": info, "budget": budget(args), "runs": slim}, indent=1)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_budget_flags(parser)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--floors",
        default=",".join(FLOORS),
        help="Comma list of random_init, raw_pixels (empty: none).",
    )
    parser.add_argument("--output", default=os.path.join(_common.RESULTS_DIR, "fashion_mnist.md"))
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    floors = [f for f in args.floors.split(",") if f]
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"--methods: unknown {m!r}; expected some of {METHODS}")
    for f in floors:
        if f not in FLOORS:
            raise ValueError(f"--floors: unknown {f!r}; expected some of {FLOORS}")
    started = time.time()
    info = _common.machine()
    _common.emit({"benchmark": "machine", **info})
    stem = os.path.splitext(args.output)[0]
    results = []

    def record(result):
        results.append(result)
        _common.emit({k: v for k, v in result.items() if k not in ("config", "probe_history")})
        write_report(
            results,
            args,
            info,
            started,
            args.output,
            stem + ".json",
            stem + "_probe.png",
            methods,
            floors,
        )

    if "raw_pixels" in floors:
        record(evaluate_floor("raw_pixels", 0, args))
    for seed in range(args.seeds):
        if "random_init" in floors:
            record(evaluate_floor("random_init", seed, args))
        for method in methods:
            record(pretrain_and_evaluate(method, seed, args))


if __name__ == "__main__":
    main()
