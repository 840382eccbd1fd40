"""Tuning on the validation split: PID's levers, Barlow Twins' and VICReg's lambda, and the LR.

Every method gets the same tuning budget: as many settings of `LEVERS`
(`quality_fashion_mnist.py`) as the others, each at the same learning rates
(`--lrs`), at the same seeds (`--seeds`, default 1) and budget flags as the
final benchmark. Defaults:

    pid           default (w_syn=1), ratio_0.3, ratio_1.0
                  (ratio_T: the PID terms' weight w_syn = T / r, r the last-epoch
                  pid_grad_ratio of the default run of the same seed and LR, so
                  the PID terms pull about T times as hard as the base loss)
    barlow_twins  lambda_offdiag 2.5e-3, 5e-3 (default), 1e-2
    vicreg        invariance weight (lambda) 10, 25 (default), 50
    learning rate the base LR (--lr; 0.004 for AdamW) and twice it

Each candidate is pretrained and evaluated on validation only (never on the
test split) with the protocol of `quality_fashion_mnist.py`; the selected
setting of each method is the one with the best mean `linear_10%` (the
10%-label probe). Writes `results/sweep_pid.md`, `.json` and the selection
`results/tuning.json`, which `quality_fashion_mnist.py --selected=... --final`
reads (it refuses a selection made at another budget).

Usage (see benchmarks/README.md):

    KERAS_BACKEND=tensorflow python benchmarks/sweep_pid.py
    KERAS_BACKEND=tensorflow python benchmarks/sweep_pid.py --levers_pid=default,syn_2,inv_0.5 \\
        --levers_barlow_twins=default,lambda_1e-2,lambda_2e-2 --levers_vicreg=default,inv_50,inv_100
"""

import argparse
import json
import os
import time

import _common
import quality_fashion_mnist as quality


def selection_table(results, metric, names):
    """Rows per candidate: mean ± std of every metric; the selection metric first."""
    rows = []
    for tag in quality.tags_in_order(results):
        runs = [r for r in results if r["tag"] == tag]
        calibrations = [r["calibration"] for r in runs if r.get("calibration")]
        reached = [r["atoms"].get("pid_grad_ratio") for r in runs if r.get("calibration")]
        note = (
            "w_syn "
            + ", ".join(f"{c['w_syn']:g}" for c in calibrations)
            + "; pid_grad_ratio reached "
            + ", ".join("-" if a is None else f"{a:.2f}" for a in reached)
            if calibrations
            else ""
        )
        rows.append(
            [runs[0]["method"], runs[0]["lever"], f"{runs[0]['lr']:g}", note]
            + [quality.pct([r["metrics"][m] for r in runs]) for m in [metric, *names]]
            + [len(runs)]
        )
    return rows


def select(results, metric):
    """Per method, the candidate (lever, lr) with the best mean `metric`.

    A `ratio_T` candidate also records `w_syn`, the mean over its seeds of the
    weight its calibration set: the final configurations train at that fixed
    weight, the setting chosen here, instead of calibrating every seed again.
    """
    best = {}
    for tag in quality.tags_in_order(results):
        runs = [r for r in results if r["tag"] == tag]
        mean = _common.mean_std([r["metrics"][metric] for r in runs])[0]
        method = runs[0]["method"]
        if method not in best or mean > best[method]["mean"]:
            best[method] = {"lever": runs[0]["lever"], "lr": runs[0]["lr"], "mean": mean}
            weights = [r["calibration"]["w_syn"] for r in runs if r.get("calibration")]
            if weights:
                best[method]["w_syn"] = float(f"{sum(weights) / len(weights):.3g}")
    return best


def run_sweep(args, methods, levers, lrs, path_md, path_selection, started):
    """Runs every candidate on validation; writes the table and the selection."""
    levers = {m: list(levers[m]) for m in methods}
    counts = quality.check_equal_budget(levers)
    args.final = False
    info = _common.machine()
    _common.emit({"benchmark": "machine", **info, "code": quality.code_state()})
    data = quality.prepare_data(args)
    metric = quality.headline_metric(args)
    names = [m for m in quality.metric_names(args) if m != metric]
    results = []
    for seed in range(args.seeds):
        for method in methods:
            for group, lr in enumerate(lrs):
                if not quality.in_shard(args, seed * len(lrs) + group):
                    continue
                for lever in levers[method]:
                    config = quality.entry(method, lever, lr, tag=f"{method}:{lever}:lr{lr:g}")
                    result = quality.run_config(config, seed, args, data, "validation")
                    results.append(result)
                    _common.emit(result)
        best = select(results, metric)
        text = "\n".join(
            [
                "# Tuning on the validation split (Fashion-MNIST)",
                "",
                _common.machine_line(info),
                f"Wall time of this invocation: {(time.time() - started) / 60:.1f} min "
                "(cached runs are reused).",
                "",
                f"Command: `{_common.command_line()}`",
                "",
                f"Code: git commit `{quality.code_state()['commit']}`.",
                "",
                f"Budget: {json.dumps(quality.budget(args))}",
                "",
                f"Settings per method: {counts}, each at learning rates "
                f"{', '.join(f'{lr:g}' for lr in lrs)}; seeds 0..{args.seeds - 1}. Selected by "
                f"mean `{metric}` on validation; the test split is not read.",
                "",
                _common.markdown_table(
                    ["method", "setting", "lr", "calibration", f"{metric} % (selection)"]
                    + [f"{n} %" for n in names]
                    + ["seeds"],
                    selection_table(results, metric, names),
                ),
                "",
                "Selected: "
                + "; ".join(
                    f"{m}: `{b['lever']}` at lr {b['lr']:g}"
                    + (f" (w_syn {b['w_syn']:g})" if "w_syn" in b else "")
                    + f", {100 * b['mean']:.2f}%"
                    for m, b in best.items()
                ),
                "",
            ]
        )
        _common.write_text(path_md, text)
        _common.write_text(
            os.path.splitext(path_md)[0] + ".json",
            json.dumps(
                {"machine": info, "budget": quality.budget(args), "runs": results}, indent=1
            ),
        )
        _common.write_text(
            path_selection,
            json.dumps(
                {
                    "budget": quality.budget_for_selection(args),
                    "metric": metric,
                    "seeds": args.seeds,
                    "levers": levers,
                    "lrs": lrs,
                    "selected": best,
                    "code": quality.code_state(),
                },
                indent=1,
            ),
        )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    quality.add_budget_flags(parser)
    parser.set_defaults(seeds=1)
    parser.add_argument("--methods", default=",".join(quality.METHODS))
    for method, names in quality.DEFAULT_LEVERS.items():
        parser.add_argument(
            f"--levers_{method}",
            default=",".join(names),
            help="Comma list of: " + ", ".join(quality.LEVERS[method]),
        )
    parser.add_argument(
        "--lrs", default=None, help="Comma list of base LRs (default: the optimizer's, and 2x)."
    )
    parser.add_argument("--output", default=os.path.join(_common.RESULTS_DIR, "sweep_pid.md"))
    parser.add_argument("--selection", default=os.path.join(_common.RESULTS_DIR, "tuning.json"))
    args = quality.apply_smoke(parser.parse_args(argv))
    quality.code_state()
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in quality.METHODS:
            raise ValueError(f"--methods: unknown {m!r}; expected some of {quality.METHODS}")
    if args.smoke:
        levers = {m: quality.SMOKE_LEVERS[m] for m in methods}
        args.output = os.path.join(args.runs_dir, "sweep.md")
        args.selection = os.path.join(args.runs_dir, "tuning.json")
    else:
        levers = {m: [n for n in getattr(args, f"levers_{m}").split(",") if n] for m in methods}
    base = quality.base_lr(args)
    lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else [base, 2 * base]
    output, selection = (quality.shard_path(args, p) for p in (args.output, args.selection))
    return run_sweep(args, methods, levers, lrs, output, selection, time.time())


if __name__ == "__main__":
    main()
