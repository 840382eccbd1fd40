"""The fine-tuning evaluation again, with this package's `kps.evaluation.finetune`,
on the backbones of a quality report (`results/fashion_mnist.json`).

`quality_fashion_mnist.py` keys a pretraining run on the package's source, so a
change to the evaluation alone retrains every backbone. This script re-runs only the
fine-tuning: the same backbones, label subsets and seeds, with this package and
`--batch_size`, and writes a paired report next to the original
(`results/fashion_mnist_finetune.md`). Each run reads the test split once more,
logged in `<runs_dir>/test_reads.jsonl` like every other read; use it only for a
change decided without the test split, applied to every method alike.

    KERAS_BACKEND=tensorflow python benchmarks/refinetune.py --shard=0/2   # and 1/2
    KERAS_BACKEND=tensorflow python benchmarks/refinetune.py               # the report
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import quality_fashion_mnist as quality  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", default=os.path.join(_common.RESULTS_DIR, "fashion_mnist.json"))
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--runs_dir", default=os.path.join(_common.REPO_ROOT, "runs", "benchmarks"))
    parser.add_argument("--shard", type=quality.parse_shard, default=None)
    parser.add_argument(
        "--output", default=os.path.join(_common.RESULTS_DIR, "fashion_mnist_finetune.md")
    )
    return parser.parse_args(argv)


def refinetune(run, budget, args, folder):
    """The record of fine-tuning `run`'s backbone with this package (cached)."""
    import keras_pid_ssl as kps

    settings = {
        "label_fraction": budget["finetune_fraction"],
        "epochs": budget["finetune_epochs"],
        "batch_size": args.batch_size,
        "seed": run["seed"],
    }
    material = {
        "kind": "refinetune",
        "of": run["run_key"],
        "settings": settings,
        "code": quality.code_state()["package_source"],
        "versions": quality.library_versions(),
    }
    key = _common.cache_key(material)
    run_dir = os.path.join(_common.REPO_ROOT, run["run_dir"])
    path = os.path.join(run_dir, f"refinetune_test_{key}.json")
    if os.path.exists(path):
        return quality._read_json(path)
    result = kps.evaluation.finetune(
        os.path.join(run_dir, "backbone.keras"),
        "fashion_mnist",
        os.path.join(run_dir, f"refinetune_test_{key}"),
        data_dir=folder,
        train_subset=budget["train_subset"],  # None: all, as the report evaluated
        test_subset=budget["eval_images"],
        verbose=0,
        **settings,
    )
    record = {"material": material, "top1": result["top1"], "result": result}
    _common.write_text(path, json.dumps(record, indent=1))
    with open(os.path.join(args.runs_dir, "test_reads.jsonl"), "a") as f:
        f.write(json.dumps({"refinetune": key, "of": run["run_key"], "seed": run["seed"],
                            "date": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")  # fmt: skip
    return record


def report(results, report_json, args, started):
    budget = report_json["budget"]
    name = f"finetune_{quality.percent(budget['finetune_fraction'])}"
    before = f"{name} before"
    names = [name, before, "train accuracy"]
    pid_tags, base_tags = quality.compared_tags(results)
    code = quality.code_state()
    original = report_json["code"]
    text = "\n".join(
        [
            "# Fashion-MNIST: fine-tuning with this package, on the backbones of "
            f"{os.path.relpath(args.report, _common.REPO_ROOT)} (test split)",
            "",
            _common.machine_line(_common.machine()),
            f"Wall time of this invocation: {(time.time() - started) / 60:.1f} min "
            "(cached runs are reused).",
            "",
            f"Command: `{_common.command_line()}`",
            "",
            f"Fine-tuning code: git commit `{code['commit']}`"
            + (f" with uncommitted changes in {code['dirty']}" if code["dirty"] else "")
            + f", package source sha256 `{code['package_source'][:16]}`. Backbones: "
            f"commit `{original['commit']}`, package source `{original['package_source'][:16]}`.",
            "",
            f"`{name}`: `kps.evaluation.finetune` on the report's class-stratified "
            f"{100 * budget['finetune_fraction']:g}% label subset of each seed, "
            f"{budget['finetune_epochs']} epochs at batch size {args.batch_size}; "
            f"`{before}`: the report's figure. `train accuracy`: the last epoch's, "
            "on augmented views. Mean ± sample std over seeds, top-1 %.",
            "",
            quality.summary_table(results, names),
            "",
            "Paired differences PID - baseline per seed (points): mean [95% t-interval over "
            "seeds] (per-seed differences).",
            "",
            _common.markdown_table(
                ["difference", "seeds"] + names[:2],
                quality.paired_rows(results, names[:2], pid_tags, base_tags),
            ),
            "",
        ]
    )
    path = quality.shard_path(args, args.output)
    _common.write_text(path, text)
    _common.write_text(
        os.path.splitext(path)[0] + ".json",
        json.dumps({"budget": budget, "code": code, "runs": results}, indent=1),
    )


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    report_json = quality._read_json(args.report)
    budget = report_json["budget"]
    data = quality.prepare_data(
        argparse.Namespace(
            runs_dir=args.runs_dir,
            val_fraction=budget["val_fraction"],
            split_seed=budget["split_seed"],
            image_size=budget["image_size"],
        )
    )
    name = f"finetune_{quality.percent(budget['finetune_fraction'])}"
    results = []
    for index, run in enumerate(report_json["runs"]):
        if not quality.in_shard(args, index):
            continue
        record = refinetune(run, budget, args, data["folders"]["test"])
        metrics = {
            name: record["top1"],
            f"{name} before": run["metrics"][name],
            "train accuracy": record["result"]["final_train_accuracy"],
        }
        results.append({**run, "metrics": metrics})
        _common.emit({"tag": run["tag"], "seed": run["seed"], **metrics})
        report(results, report_json, args, started)


if __name__ == "__main__":
    main()
