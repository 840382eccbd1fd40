"""A small, documented sweep over the PID levers on Fashion-MNIST.

Each setting changes the `pid` preset (docs/spec.md, section 3 defaults: `units="r2"`,
`w_joint=0`, `w_red=0`, `w_syn=1`, `invariance_weight=1`,
`target_momentum=0`, `target_view="clean"`, protocol warm-up and transition
of 10% of the epochs each) in one or two places, and is pretrained and
linear-evaluated with `quality_fashion_mnist.pretrain_and_evaluate` under the
same budget flags as the quality benchmark (at least two seeds). Barlow
Twins at the same budget and seeds is the reference row. Runs are cached in
`--runs_dir`, keyed by their full configuration, so the `default` setting and
the Barlow Twins reference reuse the quality benchmark's runs when the budget
flags are the same.

Settings (name: overrides, and why):

    default       {}                                 the preset
    syn_0.5       w_syn=0.5                          weaker synergy reward
    syn_2         w_syn=2                            stronger synergy reward
    inv_0.5       invariance_weight=0.5, w_syn=1     the paper's re-calibration knob
    red_0.5       w_red=0.5                          also penalise redundancy
    joint_0.1     w_joint=0.1                        keep the views jointly informative
    nats          units="nats"                       information in nats, not R^2
    ema_0.99      target_momentum=0.99               EMA target network
    weak_target   target_view="weak"                 flip-augmented target view
    no_protocol   pid_warmup_epochs=0, pid_transition_epochs=0   PID from the first step
    long_warmup   pid_warmup_epochs=40% of epochs    longer plain-Barlow-Twins warm-up

(Below 6 epochs the protocol's default warm-up and transition round to 0
epochs, so `no_protocol` then equals `default`.)

Writes `results/sweep_pid.md` and `results/sweep_pid.json`.

Usage (see benchmarks/README.md):

    KERAS_BACKEND=tensorflow python benchmarks/sweep_pid.py --seeds=2 --settings=default,inv_0.5
"""

import argparse
import json
import os
import time

import _common
import quality_fashion_mnist as quality

SETTINGS = {
    "default": ({}, "the `pid` preset"),
    "syn_0.5": ({"w_syn": 0.5}, "weaker synergy reward"),
    "syn_2": ({"w_syn": 2.0}, "stronger synergy reward"),
    "inv_0.5": ({"invariance_weight": 0.5}, "re-calibrated (halved) invariance term"),
    "red_0.5": ({"w_red": 0.5}, "also penalise redundancy"),
    "joint_0.1": ({"w_joint": 0.1}, "keep the views jointly informative of the target"),
    "nats": ({"units": "nats"}, "PID terms in nats instead of R^2 units"),
    "ema_0.99": ({"target_momentum": 0.99}, "EMA target network"),
    "weak_target": ({"target_view": "weak"}, "flip-augmented target view"),
    "no_protocol": (
        {"pid_warmup_epochs": 0, "pid_transition_epochs": 0},
        "PID terms from the first step",
    ),
    "long_warmup": ({"pid_warmup_epochs": "40%"}, "longer plain-base warm-up (40% of epochs)"),
}
REFERENCE = "barlow_twins"


def resolve(overrides, epochs):
    """Turns "P%" epoch counts into ints (P% of `epochs`, rounded, at least 1)."""
    out = {}
    for name, value in overrides.items():
        if isinstance(value, str) and value.endswith("%"):
            value = max(1, round(float(value[:-1]) / 100 * epochs))
        out[name] = value
    return out


def run_setting(name, seed, args):
    overrides = resolve(SETTINGS[name][0], args.epochs)
    tag = "pid" if not overrides else f"pid_sweep_{name}"
    result = quality.pretrain_and_evaluate("pid", seed, args, tag=tag, **overrides)
    return {**result, "setting": name, "overrides": overrides}


def _describe(overrides):
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(preset)"


def write_report(results, reference, names, args, info, started, path_md, path_json):
    ref_mean = _common.mean_std([r["top1"] for r in reference])[0] if reference else None
    rows = []
    best = None
    for name in names:
        runs = [r for r in results if r["setting"] == name]
        if not runs:
            continue
        mean, std = _common.mean_std([r["top1"] for r in runs])
        knn = _common.mean_std([r.get("knn_accuracy") for r in runs])
        delta = "" if ref_mean is None else f"{100 * (mean - ref_mean):+.2f}"
        rows.append(
            [
                name,
                _describe(runs[0]["overrides"]),
                f"{100 * mean:.2f} ± {100 * std:.2f}",
                f"{100 * knn[0]:.2f} ± {100 * knn[1]:.2f}",
                delta,
                len(runs),
            ]
        )
        if best is None or mean > best[1]:
            best = (name, mean)
    if reference:
        mean, std = _common.mean_std([r["top1"] for r in reference])
        knn = _common.mean_std([r.get("knn_accuracy") for r in reference])
        rows.append(
            [
                f"reference: {REFERENCE}",
                "-",
                f"{100 * mean:.2f} ± {100 * std:.2f}",
                f"{100 * knn[0]:.2f} ± {100 * knn[1]:.2f}",
                "+0.00",
                len(reference),
            ]
        )
    lines = [
        "# PID sweep on Fashion-MNIST",
        "",
        _common.machine_line(info),
        f"Wall time of this invocation: {(time.time() - started) / 60:.1f} min "
        "(cached runs are free).",
        "",
        f"Command: `{_common.command_line()}`",
        "",
        quality.budget_text(args),
        "",
        "Each setting changes the `pid` preset only where listed (preset: units=r2, w_joint=0, "
        "w_red=0, w_syn=1, invariance_weight=1, target_momentum=0, target_view=clean, protocol "
        "warm-up and transition of round(0.1 x epochs) epochs). Mean ± sample std over seeds; "
        f"delta: difference of mean linear top-1 to {REFERENCE} at the same budget and seeds.",
        "",
        _common.markdown_table(
            [
                "setting",
                "overrides",
                "linear top-1 %",
                "kNN top-1 % (last epoch)",
                f"delta vs {REFERENCE} (pts)",
                "seeds",
            ],
            rows,
        ),
        "",
    ]
    if best is not None:
        verdict = (
            ""
            if ref_mean is None
            else (" It beats" if best[1] > ref_mean else " It does not beat")
            + f" {REFERENCE} ({100 * ref_mean:.2f}%) at this budget; differences below about "
            "two standard deviations are not evidence."
        )
        lines += [f"Best setting here: `{best[0]}` ({100 * best[1]:.2f}%).{verdict}", ""]
    _common.write_text(path_md, "\n".join(lines))
    _common.write_text(
        path_json,
        json.dumps(
            {
                "machine": info,
                "budget": quality.budget(args),
                "runs": [
                    {k: v for k, v in r.items() if k != "probe_history"}
                    for r in results + reference
                ],
            },
            indent=1,
        ),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    quality.add_budget_flags(parser)
    parser.set_defaults(seeds=2)
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help="Comma list of: " + ", ".join(SETTINGS)
    )
    parser.add_argument(
        "--no_reference", action="store_true", help=f"Skip the {REFERENCE} reference runs."
    )
    parser.add_argument("--output", default=os.path.join(_common.RESULTS_DIR, "sweep_pid.md"))
    args = parser.parse_args(argv)
    names = [n for n in args.settings.split(",") if n]
    for name in names:
        if name not in SETTINGS:
            raise ValueError(f"--settings: unknown {name!r}; expected some of {list(SETTINGS)}")
    if args.seeds < 2:
        raise ValueError(f"--seeds must be at least 2 for a sweep. Received: {args.seeds}")
    started = time.time()
    info = _common.machine()
    _common.emit({"benchmark": "machine", **info})
    stem = os.path.splitext(args.output)[0]
    results, reference = [], []
    for seed in range(args.seeds):
        if not args.no_reference:
            reference.append(quality.pretrain_and_evaluate(REFERENCE, seed, args))
            reference[-1] = {**reference[-1], "setting": f"reference: {REFERENCE}", "overrides": {}}
        for name in names:
            results.append(run_setting(name, seed, args))
            _common.emit(
                {k: v for k, v in results[-1].items() if k not in ("config", "probe_history")}
            )
            write_report(
                results, reference, names, args, info, started, args.output, stem + ".json"
            )


if __name__ == "__main__":
    main()
