"""What the BatchNorm fix of PID's target pass changes (issue 14), as an ablation.

Until commit a729eba the PID model's target pass (the clean images) ran the
online encoder in training mode and kept the BatchNorm moving statistics it
produced, so inference-mode features (linear evaluation) were normalised with
statistics partly of clean images, which Barlow Twins never sees. The library
now puts those statistics back after the pass. This script trains the
README's 10-epoch Fashion-MNIST PID run twice per seed at the same code: as
the library does (`fixed`), and with the target pass patched, in this process
only, to keep the statistics it changes (`leak`, the old behaviour). Then it
scores each backbone with `kps.evaluation.linear_eval` on all 60,000 / 10,000
images, as the README's 10-epoch table did.

    KERAS_BACKEND=tensorflow python benchmarks/bn_leak.py --mode=fixed --seed=0
    KERAS_BACKEND=tensorflow python benchmarks/bn_leak.py --mode=leak --seed=0
    KERAS_BACKEND=tensorflow python benchmarks/bn_leak.py --report    # results/bn_leak.md

Each run writes `<runs_dir>/<mode>_s<seed>/record.json`; `--report` tables
the records found, paired by seed.
"""

import argparse
import json
import os
import time

import _common

# The README's 10-epoch run (`recipes/pretrain_cifar.py --dataset=fashion_mnist
# --backbone=small_convnet --epochs=10 --batch_size=256 --optimizer=adamw
# --warmup_epochs=1 --projector_dims=512,512 --train_subset=20000
# --probe_subset=5000 --knn_every=1 --pid_warmup_epochs=2
# --pid_transition_epochs=2 --seed=S`).
RUN = dict(
    dataset="fashion_mnist",
    method="pid",
    backbone="small_convnet",
    epochs=10,
    batch_size=256,
    optimizer="adamw",
    warmup_epochs=1,
    projector_dims=[512, 512],
    train_subset=20000,
    probe_subset=5000,
    knn_every=1,
    pid_warmup_epochs=2,
    pid_transition_epochs=2,
    export=False,
)


def leak_batchnorm_statistics():
    """Patches `kps.models.PIDModel.target` to keep what the target pass changes."""
    import keras

    import keras_pid_ssl as kps

    fixed = kps.models.PIDModel.target

    def target(self, batch, training):
        if self.ssl_loss.target_kind == "label" or self.target_encoder is not None:
            return fixed(self, batch, training)
        return keras.ops.stop_gradient(self._embed(batch["target"], training))

    kps.models.PIDModel.target = target


def run(args):
    import keras_pid_ssl as kps

    if args.mode == "leak":
        leak_batchnorm_statistics()
    run_dir = os.path.join(args.runs_dir, f"{args.mode}_s{args.seed}")
    options = {**RUN, **({"epochs": args.epochs} if args.epochs else {})}
    if args.train_subset:
        options["train_subset"] = args.train_subset
        options["probe_subset"] = min(options["probe_subset"], args.train_subset)
    code = {**_common.git_state(), "package_source": _common.package_source_hash()[:16]}
    start = time.time()
    summary = kps.training.pretrain(run_dir, seed=args.seed, **options)
    pretrain_s = time.time() - start
    result = kps.evaluation.linear_eval(
        os.path.join(run_dir, "backbone.keras"),
        "fashion_mnist",
        train_subset=args.eval_subset,
        test_subset=args.eval_subset,
        seed=args.seed,
    )
    final = summary["final_metrics"]
    record = {
        "mode": args.mode,
        "seed": args.seed,
        "options": options,
        "linear_top1": result["top1"],
        "probe_accuracy": final.get("probe_accuracy"),
        "knn_accuracy": final.get("knn_accuracy"),
        "redundancy": final.get("redundancy"),
        "synergy": final.get("synergy"),
        "monitor_redundancy": final.get("monitor_redundancy"),
        "monitor_synergy": final.get("monitor_synergy"),
        "pretrain_s": pretrain_s,
        "machine": _common.machine(),
        "code": code,
        "command": _common.command_line(),
    }
    _common.write_text(os.path.join(run_dir, "record.json"), json.dumps(record, indent=1))
    print(json.dumps(record), flush=True)


def report(args):
    if not os.path.isdir(args.runs_dir):
        raise SystemExit(f"No runs in {args.runs_dir}: run --mode=fixed and --mode=leak first.")
    records = {}
    for name in sorted(os.listdir(args.runs_dir)):
        path = os.path.join(args.runs_dir, name, "record.json")
        if os.path.exists(path):
            with open(path) as f:
                r = json.load(f)
            records[(r["mode"], r["seed"])] = r
    seeds = sorted({s for _, s in records})

    def cell(r, key):
        return "-" if r is None or r.get(key) is None else f"{100 * r[key]:.2f}"

    def atoms(r):
        if r is None or r.get("monitor_redundancy") is None:
            return "-"
        return f"{r['monitor_redundancy']:.3f} / {r['monitor_synergy']:.3f}"

    rows, fixed_top1, leak_top1 = [], [], []
    for seed in seeds:
        fixed, leak = records.get(("fixed", seed)), records.get(("leak", seed))
        diff = None if fixed is None or leak is None else fixed["linear_top1"] - leak["linear_top1"]
        if diff is not None:
            fixed_top1.append(fixed["linear_top1"])
            leak_top1.append(leak["linear_top1"])
        rows.append(
            [seed, cell(leak, "linear_top1"), cell(fixed, "linear_top1")]
            + ["-" if diff is None else f"{100 * diff:+.2f}"]
            + [cell(leak, "knn_accuracy"), cell(fixed, "knn_accuracy")]
            + [atoms(leak), atoms(fixed)]
        )
    lines = [
        "# The BatchNorm fix of PID's target pass, at the README's 10-epoch budget",
        "",
        _common.machine_line(next(iter(records.values()))["machine"]) if records else "",
        "",
        "Code: "
        + ", ".join(
            sorted({f"git commit `{r['code']['commit']}`" for r in records.values() if "code" in r})
        )
        + ".",
        "",
        "`leak`: the target pass keeps the BatchNorm moving statistics it changes (the "
        "behaviour before a729eba, patched in by `benchmarks/bn_leak.py`); `fixed`: the "
        "library (statistics put back). Same code and seed otherwise. Linear top-1 %: "
        "`kps.evaluation.linear_eval` on all 60,000 / 10,000 Fashion-MNIST images; kNN: "
        "the last epoch's `knn_accuracy` monitor; redundancy / synergy: the last epoch's PID "
        "monitor on held-out images (projector embeddings).",
        "",
        _common.markdown_table(
            [
                "seed",
                "linear, leak",
                "linear, fixed",
                "fixed - leak (pts)",
                "kNN, leak",
                "kNN, fixed",
                "redundancy / synergy (nats), leak",
                "redundancy / synergy (nats), fixed",
            ],
            rows,
        ),
    ]
    if len(fixed_top1) >= 2:
        d = _common.paired_difference(fixed_top1, leak_top1)
        lines += [
            "",
            f"Mean difference fixed - leak: {100 * d['mean']:+.2f} points, 95% t-interval "
            f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] over {d['n']} seeds.",
        ]
    _common.write_text(args.output, "\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("fixed", "leak"), default="fixed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", action="store_true", help="Table the records; train nothing.")
    parser.add_argument("--runs_dir", default=os.path.join(_common.REPO_ROOT, "runs", "bn_leak"))
    parser.add_argument("--output", default=os.path.join(_common.RESULTS_DIR, "bn_leak.md"))
    parser.add_argument(
        "--epochs",
        type=int,
        default=0,
        help="Override (0: the README's 10; >= 5 for its PID schedule).",
    )
    parser.add_argument("--train_subset", type=int, default=0, help="Override (0: 20000).")
    parser.add_argument("--eval_subset", type=int, default=None, help="Default: all images.")
    args = parser.parse_args(argv)
    if args.report:
        return report(args)
    return run(args)


if __name__ == "__main__":
    main()
