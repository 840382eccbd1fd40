"""Learning quality on the real Fashion-MNIST: PID vs Barlow Twins vs VICReg, with floors.

The protocol (benchmarks/README.md, "Quality protocol"):

  * Splits. A fixed, seeded, class-stratified 10% of the 60,000 training
    images is the validation split (`--val_fraction`, `--split_seed`); the
    other 90% is the pool. Both are written as idx files into
    `<runs_dir>/data/<key>/{validation,test}/`: `train` is the pool in both,
    `t10k` is the validation split in `validation/` and the real test split
    in `test/`. Pretraining reads `validation/` (its online monitors score
    the validation split), so no run ever sees a test image; it pretrains on
    the first `--train_subset` pool images.
  * Selection. Every choice of setting is made on validation
    (`sweep_pid.py`: PID's levers, among them the PID terms' weight set so
    `pid_grad_ratio` reaches a target, and Barlow Twins' / VICReg's lambda,
    with the same number of candidates per method times the same learning
    rates). This script evaluates on validation unless `--final`.
  * `--final` evaluates on the test split: each final configuration
    (method, setting, seed, code, budget) is read once; the result is
    cached and every test read is logged in `<runs_dir>/test_reads.jsonl`.
  * Evaluation of every run (and of the floors), on frozen backbone
    features of the pretraining images (the labelled bank) and of the
    evaluation split: linear probe (standardised logistic regression, as
    `kps.evaluation.linear_eval`) with 1%, 10% and 100% of the bank's labels
    (class-stratified, seeded by the run's seed:
    `kps.evaluation.stratified_subset`); weighted cosine kNN with k=20 and
    k=200 over the whole bank (`KNNMonitor`'s classifier); fine-tuning
    with 1% of the labels (`kps.evaluation.finetune`, same subset).
  * Floors: logistic regression (and kNN) on raw pixels, and a randomly
    initialised encoder of the same architecture, through the same
    evaluation, on the same splits and label subsets.
  * Report: mean ± sample std over seeds per metric; paired differences
    PID - baseline per seed with a 95% t-interval; whether every method
    beats both floors by at least 2 points on the 10%-label probe.
  * Cache. A pretraining run lives in `<runs_dir>/pretrain/<method>/<key>/`,
    `key` = hash of the package's source (`keras_pid_ssl/**/*.py`), the full
    `kps.training.pretrain` arguments, the split, the library versions and
    the backend; an evaluation's key adds this benchmark's own source and
    the evaluation settings. A run made by other code is never reused: it
    is reported as stale and a new run is made. The git commit is recorded.

Usage:

    KERAS_BACKEND=tensorflow python benchmarks/sweep_pid.py        # select on validation
    KERAS_BACKEND=tensorflow python benchmarks/quality_fashion_mnist.py \\
        --selected=results/tuning.json --final                      # test, once
    KERAS_BACKEND=tensorflow python benchmarks/quality_fashion_mnist.py --smoke
"""

import argparse
import copy
import fcntl
import json
import os
import sys
import time

import _common

METHODS = ("pid", "barlow_twins", "vicreg")
FLOORS = ("raw_pixels", "random_init")
FLOOR_LABELS = {
    "raw_pixels": "floor: raw pixels",
    "random_init": "floor: random-init encoder",
}
BENCHMARK_SOURCES = ("_common.py", "quality_fashion_mnist.py")

# The base LR of untuned runs where it differs from the package's default:
# AdamW's 1e-3 is far too low at these budgets (chosen on a validation split,
# results/first_run_validation_2026-12-02.md: 0.004 and 0.008 beat it by 3
# points at 10 epochs).
BENCHMARK_LRS = {"adamw": 0.004}

# Candidate settings per method, by name. `overrides`: extra
# `kps.training.pretrain` arguments; `loss_attributes`: loss coefficients
# pretrain has no argument for (set by `_common.loss_attribute_callback`);
# `grad_ratio_target`: PID's synergy weight is set to
# `target / r`, `r` the last-epoch `pid_grad_ratio` of the default PID run of
# the same seed and learning rate (its PID terms at weight 1), so the PID
# terms' gradient is about `target` times the base loss's.
LEVERS = {
    "pid": {
        "default": {"about": "the `pid` preset (w_syn=1)"},
        "ratio_0.3": {"grad_ratio_target": 0.3, "about": "w_syn set for pid_grad_ratio ~ 0.3"},
        "ratio_1.0": {"grad_ratio_target": 1.0, "about": "w_syn set for pid_grad_ratio ~ 1.0"},
        "syn_2": {"overrides": {"w_syn": 2.0}, "about": "w_syn=2"},
        "inv_0.5": {"overrides": {"invariance_weight": 0.5}, "about": "invariance weight 0.5"},
        "red_0.5": {"overrides": {"w_red": 0.5}, "about": "also penalise redundancy"},
        "weak_target": {"overrides": {"target_view": "weak"}, "about": "flip-augmented target"},
    },
    "barlow_twins": {
        "lambda_2.5e-3": {"loss_attributes": {"lambda_offdiag": 2.5e-3}, "about": "lambda 2.5e-3"},
        "default": {"about": "the paper's lambda 5e-3"},
        "lambda_1e-2": {"loss_attributes": {"lambda_offdiag": 1e-2}, "about": "lambda 1e-2"},
        "lambda_2e-2": {"loss_attributes": {"lambda_offdiag": 2e-2}, "about": "lambda 2e-2"},
    },
    "vicreg": {
        "inv_10": {"loss_attributes": {"invariance_weight": 10.0}, "about": "lambda (inv.) 10"},
        "default": {"about": "the paper's lambda = mu = 25, nu = 1"},
        "inv_50": {"loss_attributes": {"invariance_weight": 50.0}, "about": "lambda (inv.) 50"},
        "inv_100": {"loss_attributes": {"invariance_weight": 100.0}, "about": "lambda 100"},
    },
}
# The default tuning grid: the same number of settings for every method.
DEFAULT_LEVERS = {
    "pid": ("default", "ratio_0.3", "ratio_1.0"),
    "barlow_twins": ("lambda_2.5e-3", "default", "lambda_1e-2"),
    "vicreg": ("inv_10", "default", "inv_50"),
}
# The fine-tuning evaluation's settings: part of an evaluation's key, not of a selection's.
FINETUNE_KEYS = ("finetune_fraction", "finetune_epochs", "finetune_batch_size")

SMOKE_LEVERS = {
    "pid": ("default", "ratio_1.0"),
    "barlow_twins": ("default", "lambda_1e-2"),
    "vicreg": ("default", "inv_50"),
}
SMOKE_FLAGS = dict(
    epochs=1,
    batch_size=128,
    warmup_epochs=0,
    projector_dims="32,32",
    train_subset=256,
    probe_subset=128,
    eval_images=300,
    finetune_epochs=1,
    seeds=2,
    verbose=0,
)


# Flags ------------------------------------------------------------------------------


def add_budget_flags(parser):
    """The flags that fix the budget and the protocol (shared with `sweep_pid.py`)."""
    parser.add_argument(
        "--backbone",
        default="small_convnet",
        choices=("small_convnet", "resnet18", "resnet34", "resnet50"),
    )
    parser.add_argument(
        "--image_size", type=int, default=20, help="Images are resized to it (28: as stored)."
    )
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--optimizer", default="adamw", choices=("adamw", "lars", "sgd"))
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Base LR per 256 images of untuned runs; sweep_pid.py tries it and twice it "
        "(default: BENCHMARK_LRS, else the optimizer's default in kps.training).",
    )
    parser.add_argument("--warmup_epochs", type=int, default=1, help="Learning-rate warm-up.")
    parser.add_argument("--projector_dims", default="512,512")
    parser.add_argument(
        "--train_subset",
        type=int,
        default=0,
        help="Pretrain on the first N pool images (0: the whole pool); they are the "
        "labelled bank of the evaluation.",
    )
    parser.add_argument("--probe_subset", type=int, default=2000, help="Online monitor images.")
    parser.add_argument(
        "--monitor_size", type=int, default=0, help="PID: PIDMonitor batch (0: off)."
    )
    parser.add_argument("--val_fraction", type=float, default=0.1)
    parser.add_argument("--split_seed", type=int, default=0)
    parser.add_argument(
        "--eval_images",
        type=int,
        default=0,
        help="Evaluate on the first N validation / test images (0: all).",
    )
    parser.add_argument("--label_fractions", default="0.01,0.1,1")
    parser.add_argument("--knn_k", default="20,200")
    parser.add_argument("--finetune_fraction", type=float, default=0.01)
    parser.add_argument("--finetune_epochs", type=int, default=30)
    parser.add_argument(
        "--finetune_batch_size",
        type=int,
        default=32,
        help="Fine-tuning batch size: 1%% of 54,000 images, 30 epochs, are 480 steps at 32.",
    )
    parser.add_argument("--seeds", type=int, default=3, help="Seeds 0..N-1.")
    parser.add_argument(
        "--runs_dir",
        default=os.path.join(_common.REPO_ROOT, "runs", "benchmarks"),
        help="Runs, split data and caches (git-ignored).",
    )
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=None,
        help="I/N: run only part I of N (0 <= I < N) of the work, interleaved ((seed, "
        "configuration) items here; (seed, LR) groups in sweep_pid.py), e.g. one process "
        "per core; its report goes to "
        "<runs_dir>/shards/. A run without --shard then reuses the parts' cached runs.",
    )
    parser.add_argument("--verbose", type=int, default=0, help="Keras fit verbosity.")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="The whole protocol on tiny subsets (1 epoch, few images), into <runs_dir>/smoke.",
    )
    return parser


def apply_smoke(args):
    """Tiny settings for `--smoke` (in place); runs and reports go to `<runs_dir>/smoke`."""
    if not args.smoke:
        return args
    for name, value in SMOKE_FLAGS.items():
        setattr(args, name, value)
    args.runs_dir = os.path.join(args.runs_dir, "smoke")
    return args


def parse_shard(text):
    """`"I/N"` as `(I, N)`, with 0 <= I < N."""
    try:
        part, parts = (int(x) for x in text.split("/"))
    except ValueError:
        part = parts = -1
    if not 0 <= part < parts:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, e.g. 0/2; got {text!r}")
    return part, parts


def in_shard(args, index):
    """Whether work item `index` belongs to this process's `--shard` (all without one)."""
    return args.shard is None or index % args.shard[1] == args.shard[0]


def shard_path(args, path):
    """`path`, or under `<runs_dir>/shards/` with the part in its name for a `--shard` run."""
    if args.shard is None:
        return path
    stem, ext = os.path.splitext(os.path.basename(path))
    name = f"{stem}_part{args.shard[0]}of{args.shard[1]}{ext}"
    return os.path.join(args.runs_dir, "shards", name)


def fractions(text):
    return [float(f) for f in text.split(",") if f]


def percent(fraction):
    return f"{100 * fraction:g}%"


def metric_names(args):
    """The evaluation's metrics, in report order."""
    return (
        [f"linear_{percent(f)}" for f in fractions(args.label_fractions)]
        + [f"knn_k{int(k)}" for k in args.knn_k.split(",") if k]
        + [f"finetune_{percent(args.finetune_fraction)}"]
    )


def headline_metric(args):
    """The 10%-label linear probe: the floors' test and the sweep's selection metric."""
    return f"linear_{percent(0.1)}"


def budget(args):
    """Everything a run's result depends on besides method, setting and seed."""
    return {
        "dataset": "fashion_mnist",
        "backbone": args.backbone,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": base_lr(args),
        "warmup_epochs": args.warmup_epochs,
        "projector_dims": [int(d) for d in args.projector_dims.split(",")],
        "train_subset": args.train_subset or None,
        "probe_subset": args.probe_subset,
        "monitor_size": args.monitor_size,
        "val_fraction": args.val_fraction,
        "split_seed": args.split_seed,
        "eval_images": args.eval_images or None,
        "label_fractions": fractions(args.label_fractions),
        "knn_k": [int(k) for k in args.knn_k.split(",") if k],
        "finetune_fraction": args.finetune_fraction,
        "finetune_epochs": args.finetune_epochs,
        "finetune_batch_size": args.finetune_batch_size,
    }


def base_lr(args):
    """`--lr`, else the optimizer's default base LR in the package."""
    if args.lr is not None:
        return args.lr
    if args.optimizer in BENCHMARK_LRS:
        return BENCHMARK_LRS[args.optimizer]
    import keras_pid_ssl as kps

    defaults = getattr(kps.training, "OPTIMIZER_DEFAULTS", None)
    if defaults is None:
        from keras_pid_ssl.config import OPTIMIZER_DEFAULTS as defaults
    return defaults[args.optimizer]["lr"]


def loss_options_accepted(method, names):
    """Whether `kps.training.pretrain` takes these loss arguments of `method` itself.

    Where it does (`kps.PretrainConfig`'s loss options), they are passed as
    arguments and stored in the run's configuration; where it does not, a
    callback sets them (`_common.loss_attribute_callback`).
    """
    try:
        from keras_pid_ssl.config import loss_parameters
    except ImportError:
        return False
    return set(names) <= set(loss_parameters(method))


# Code and versions --------------------------------------------------------------------


def code_state():
    """Hashes of the package's and this benchmark's source, and the git state.

    Taken once per process (kept in `_common.PROCESS_STATE`, which every
    importer of this module shares, also `__main__`), when the package is
    imported: the code that runs, even if the files change later.
    """
    state = _common.PROCESS_STATE
    if "code" not in state:
        import keras_pid_ssl

        here = os.path.dirname(os.path.abspath(__file__))
        state["code"] = {
            # The package that is imported, wherever it is installed from.
            "package_source": _common.package_source_hash(os.path.dirname(keras_pid_ssl.__file__)),
            "benchmark_source": _common.sha256_files(
                [os.path.join(here, name) for name in BENCHMARK_SOURCES], here
            ),
            **_common.git_state(),
        }
    return state["code"]


def library_versions():
    import keras
    import scipy
    import sklearn

    import keras_pid_ssl as kps

    return {
        **kps.training.versions(),
        "scikit-learn": sklearn.__version__,
        "scipy": scipy.__version__,
        "backend": keras.backend.backend(),
    }


# Data: the validation split and the folders pretraining and evaluation read --------


def prepare_data(args):
    """Writes (once) and describes the split folders; see the module docstring."""
    from keras_pid_ssl.data import fashion_mnist as fmnist

    source = fmnist.find_dir(None, "train")
    files = [
        os.path.join(source, name) for split in ("train", "test") for name in fmnist.FILES[split]
    ]
    material = {
        "source_sha256": _common.sha256_files(files, source),
        "val_fraction": args.val_fraction,
        "split_seed": args.split_seed,
        "image_size": args.image_size,
    }
    key = _common.cache_key(material)
    root = os.path.join(args.runs_dir, "data", key)
    folders = {split: os.path.join(root, split) for split in ("validation", "test")}
    done = os.path.join(root, "split.json")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "split.lock"), "w") as lock:
        # Parallel processes (--shard) wait for the first one's split.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(done):
            _write_split(args, material, folders, done)
    with open(done) as f:
        record = json.load(f)
    return {
        "key": key,
        "folders": folders,
        "pool_images": record["pool_images"],
        "validation_images": record["validation_images"],
        "validation_per_class": record["validation_per_class"],
    }


def _write_split(args, material, folders, done):
    """Writes the split folders and, last, their record `done`."""
    import numpy as np

    import keras_pid_ssl as kps

    images, labels = kps.data.load("fashion_mnist", "train")
    test = kps.data.load("fashion_mnist", "test")
    held_out, pool = _common.stratified_split(labels, args.val_fraction, args.split_seed)
    if args.image_size != images.shape[1]:
        images = kps.data.resize_images(images, args.image_size)
        test = (kps.data.resize_images(test[0], args.image_size), test[1])
    train = (images[pool], labels[pool])
    _common.write_fashion_mnist_folder(
        folders["validation"], train, (images[held_out], labels[held_out])
    )
    _common.write_fashion_mnist_folder(folders["test"], train, test)
    record = {
        **material,
        "pool_images": int(len(pool)),
        "validation_images": int(len(held_out)),
        "validation_per_class": np.bincount(labels[held_out]).tolist(),
        "validation_indices": held_out.tolist(),
    }
    _common.write_text(done, json.dumps(record))


# Settings -----------------------------------------------------------------------------


def entry(method, lever="default", lr=None, tag=None, label=None):
    """One configuration to run: a method, a lever of `LEVERS`, a learning rate."""
    if lever not in LEVERS[method]:
        raise ValueError(
            f"Unknown setting {lever!r} for {method}; expected one of {sorted(LEVERS[method])}."
        )
    return {
        "tag": tag or (method if lever == "default" and lr is None else f"{method}:{lever}"),
        "label": label or (method if lever == "default" else f"{method} ({lever})"),
        "method": method,
        "lever": lever,
        "lr": lr,
    }


def check_equal_budget(levers):
    """`levers`: method -> list of setting names. Refuses unequal tuning budgets."""
    counts = {method: len(names) for method, names in levers.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(
            f"Every method gets the same tuning budget: the numbers of settings differ "
            f"({counts}). Give each method as many settings."
        )
    for method, names in levers.items():
        for name in names:
            entry(method, name)
    return counts


def resolve(config, seed, args, data):
    """`(overrides, loss_attributes, calibration)` of `config` at `seed`.

    A `grad_ratio_target` lever trains (or reuses) the default PID run of the
    same seed and learning rate first: its calibration.
    """
    lever = LEVERS[config["method"]][config["lever"]]
    overrides = dict(lever.get("overrides", {}))
    attributes = dict(lever.get("loss_attributes", {}))
    calibration = None
    target = lever.get("grad_ratio_target")
    if target is not None and config.get("w_syn") is not None:
        # A final configuration: the weight the tuning's calibration chose.
        overrides["w_syn"] = config["w_syn"]
        calibration = {"target": target, "w_syn": config["w_syn"], "from": "tuning"}
    elif target is not None:
        reference = pretrain_run(entry("pid", lr=config["lr"]), seed, args, data)
        ratio = reference["final_metrics"].get("pid_grad_ratio")
        if not ratio or ratio != ratio or ratio <= 0:
            raise RuntimeError(
                f"The calibration run {reference['run_dir']} logged no positive pid_grad_ratio "
                f"({ratio!r}); cannot set w_syn for the target {target}."
            )
        overrides["w_syn"] = float(f"{target / ratio:.3g}")
        calibration = {"target": target, "reference_ratio": ratio, "w_syn": overrides["w_syn"]}
    return overrides, attributes, calibration


# Pretraining, floors, evaluation --------------------------------------------------------


def pretrain_kwargs(config, seed, args, overrides):
    kwargs = dict(
        dataset="fashion_mnist",
        method=config["method"],
        backbone=args.backbone,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=config["lr"] if config["lr"] is not None else base_lr(args),
        warmup_epochs=args.warmup_epochs,
        projector_dims=[int(d) for d in args.projector_dims.split(",")],
        seed=seed,
        train_subset=args.train_subset or None,
        probe_subset=args.probe_subset,
        probe_every=args.epochs,
        knn_every=0,
        monitor_size=args.monitor_size if config["method"] == "pid" else 0,
        export=False,
    )
    kwargs.update(overrides)
    return kwargs


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _without_code(material):
    return {k: v for k, v in material.items() if k not in ("code", "versions")}


def report_stale(folder, material, key):
    """Names the runs in `folder` of the same configuration made by other code or versions."""
    if not os.path.isdir(folder):
        return []
    stale = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name, "material.json")
        if name == key or not os.path.exists(path):
            continue
        other = _read_json(path)
        if _without_code(other) == _without_code(material):
            why = [k for k in ("code", "versions") if other.get(k) != material.get(k)]
            stale.append(name)
            print(
                f"stale run {os.path.join(folder, name)} (same configuration, other "
                f"{' and '.join(why)}): not reused; running anew in {key}",
                file=sys.stderr,
                flush=True,
            )
    return stale


def pretrain_run(config, seed, args, data):
    """Pretrains `config` at `seed` (or reuses the run of the same key); its record."""
    import keras_pid_ssl as kps

    overrides, attributes, calibration = resolve(config, seed, args, data)
    kwargs = pretrain_kwargs(config, seed, args, overrides)
    if attributes and loss_options_accepted(config["method"], attributes):
        kwargs.update(attributes)
        attributes = {}
    material = {
        "kind": "pretrain",
        "pretrain_kwargs": kwargs,
        "loss_attributes": attributes,
        "data": data["key"],
        "code": code_state()["package_source"],
        "versions": library_versions(),
    }
    key = _common.cache_key(material)
    folder = os.path.join(args.runs_dir, "pretrain", config["method"])
    run_dir = os.path.join(folder, key)
    done = os.path.join(run_dir, "pretrain.json")
    if os.path.exists(done):
        record = _read_json(done)
        if record["material"] == json.loads(json.dumps(material)):
            # Where the run is now: a runs folder moved or copied since keeps its records.
            return {**record, "run_dir": run_dir}
    report_stale(folder, material, key)
    os.makedirs(run_dir, exist_ok=True)
    _common.write_text(os.path.join(run_dir, "material.json"), json.dumps(material, indent=1))
    start = time.time()
    callbacks = [_common.loss_attribute_callback(attributes)] if attributes else []
    summary = kps.training.pretrain(
        run_dir,
        data_dir=data["folders"]["validation"],
        verbose=args.verbose,
        extra_callbacks=callbacks,
        **kwargs,
    )
    record = {
        "key": key,
        "material": material,
        "run_dir": run_dir,
        "calibration": calibration,
        "final_metrics": summary["final_metrics"],
        "pretrain_s": time.time() - start,
        "git": {k: code_state()[k] for k in ("commit", "dirty")},
    }
    _common.write_text(done, json.dumps(record, indent=1))
    return record


def floor_run(floor, seed, args, data):
    """Saves (once) the floor's "backbone": `Flatten` (raw pixels) or a random-init encoder."""
    import keras

    import keras_pid_ssl as kps

    material = {
        "kind": "floor",
        "floor": floor,
        "backbone": args.backbone if floor == "random_init" else "flatten",
        "seed": seed if floor == "random_init" else None,
        "image_size": args.image_size,
        "data": data["key"],
        "code": code_state()["package_source"],
        "versions": library_versions(),
    }
    key = _common.cache_key(material)
    folder = os.path.join(args.runs_dir, "floors", floor)
    run_dir = os.path.join(folder, key)
    path = os.path.join(run_dir, "backbone.keras")
    if not os.path.exists(path):
        report_stale(folder, material, key)
        os.makedirs(run_dir, exist_ok=True)
        _common.write_text(os.path.join(run_dir, "material.json"), json.dumps(material, indent=1))
        shape = (args.image_size, args.image_size, 1)
        if floor == "random_init":
            keras.utils.set_random_seed(seed)
            encoder = kps.training.build_backbone(args.backbone, shape)
        else:
            encoder = keras.Sequential([keras.Input(shape), keras.layers.Flatten()])
        # The raw-pixels floor is shared by the seeds, so parallel processes
        # (--shard) may make it at the same time.
        _common.write_whole(path, encoder.save)
    return {"key": key, "run_dir": run_dir, "final_metrics": {}, "calibration": None}


def evaluate(run, seed, args, data, split):
    """The metrics of `metric_names` for the backbone of `run` on `split` (cached)."""
    import numpy as np

    import keras_pid_ssl as kps

    if split == "test" and not args.final:
        raise RuntimeError("The test split is read only with --final.")
    protocol = budget(args)
    material = {
        "kind": "evaluation",
        "of": run["key"],
        "split": split,
        "seed": seed,
        "protocol": {k: protocol[k] for k in ("train_subset", "eval_images", "label_fractions",
                                              "knn_k", *FINETUNE_KEYS)},
        "code": code_state()["benchmark_source"],
        "versions": library_versions(),
    }  # fmt: skip
    key = _common.cache_key(material)
    path = os.path.join(run["run_dir"], f"eval_{split}_{key}.json")
    if os.path.exists(path):
        return _read_json(path)["metrics"]
    start = time.time()
    folder = data["folders"][split]
    backbone_path = os.path.join(run["run_dir"], "backbone.keras")
    bank_x, bank_y = kps.data.load("fashion_mnist", "train", data_dir=folder)
    eval_x, eval_y = kps.data.load("fashion_mnist", "test", data_dir=folder)
    if args.train_subset:
        bank_x, bank_y = bank_x[: args.train_subset], bank_y[: args.train_subset]
    if args.eval_images:
        eval_x, eval_y = eval_x[: args.eval_images], eval_y[: args.eval_images]
    backbone = kps.evaluation.load_backbone(backbone_path)
    f_bank = kps.evaluation.extract_features(backbone, bank_x)
    f_eval = kps.evaluation.extract_features(backbone, eval_x)
    metrics = {}
    for fraction in fractions(args.label_fractions):
        chosen = kps.evaluation.stratified_subset(bank_y, fraction, seed)
        metrics[f"linear_{percent(fraction)}"] = _common.linear_probe_accuracy(
            f_bank[chosen], bank_y[chosen], f_eval, eval_y
        )
    num_classes = int(max(bank_y.max(), eval_y.max())) + 1
    for k in (int(k) for k in args.knn_k.split(",") if k):
        metrics[f"knn_k{k}"] = _common.knn_accuracy(f_bank, bank_y, f_eval, eval_y, k, num_classes)
    finetuned = kps.evaluation.finetune(
        backbone_path,
        "fashion_mnist",
        os.path.join(run["run_dir"], f"finetune_{split}_{key}"),
        data_dir=folder,
        label_fraction=args.finetune_fraction,
        epochs=args.finetune_epochs,
        batch_size=args.finetune_batch_size,
        train_subset=len(bank_x),
        test_subset=len(eval_x),
        seed=seed,
        verbose=0,
    )
    metrics[f"finetune_{percent(args.finetune_fraction)}"] = finetuned["top1"]
    record = {
        "material": material,
        "metrics": metrics,
        "bank_images": int(len(bank_x)),
        "eval_images": int(len(eval_x)),
        "eval_s": time.time() - start,
        "eval_per_class": np.bincount(eval_y).tolist(),
    }
    _common.write_text(path, json.dumps(record, indent=1))
    if split == "test":
        with open(os.path.join(args.runs_dir, "test_reads.jsonl"), "a") as f:
            f.write(json.dumps({"evaluation": key, "of": run["key"], "seed": seed,
                                "date": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")  # fmt: skip
    return metrics


def run_config(config, seed, args, data, split):
    """Pretrains (or builds the floor of) `config` at `seed` and evaluates it on `split`."""
    if config["method"] in FLOORS:
        run = floor_run(config["method"], seed, args, data)
    else:
        run = pretrain_run(config, seed, args, data)
    metrics = evaluate(run, seed, args, data, split)
    final = run["final_metrics"]
    return {
        "tag": config["tag"],
        "label": config["label"],
        "method": config["method"],
        "lever": config.get("lever"),
        "lr": config.get("lr"),
        "seed": seed,
        "split": split,
        "run_key": run["key"],
        "run_dir": os.path.relpath(run["run_dir"], _common.REPO_ROOT),
        "calibration": run.get("calibration"),
        "metrics": metrics,
        "atoms": {
            k: final.get(k) for k in ("redundancy", "synergy", "pid_grad_ratio") if k in final
        },
        "pretrain_s": run.get("pretrain_s"),
    }


# Report ---------------------------------------------------------------------------------


def pct(values):
    mean, std = _common.mean_std(values)
    return "n/a" if mean != mean else f"{100 * mean:.2f} ± {100 * std:.2f}"


def tags_in_order(results):
    seen = []
    for r in results:
        if r["tag"] not in seen:
            seen.append(r["tag"])
    return seen


def summary_table(results, names):
    rows = []
    for tag in tags_in_order(results):
        runs = [r for r in results if r["tag"] == tag]
        atoms = [
            f"{_common.mean_std([r['atoms'].get(a) for r in runs])[0]:.3g}"
            if any(r["atoms"].get(a) is not None for r in runs)
            else "-"
            for a in ("redundancy", "synergy", "pid_grad_ratio")
        ]
        minutes = [r["pretrain_s"] / 60 for r in runs if r.get("pretrain_s")]
        rows.append(
            [runs[0]["label"]]
            + [pct([r["metrics"][m] for r in runs]) for m in names]
            + atoms
            + [len(runs), f"{_common.mean_std(minutes)[0]:.1f}" if minutes else "-"]
        )
    header = (
        ["configuration"]
        + [f"{m} %" for m in names]
        + ["redundancy (nats)", "synergy (nats)", "pid_grad_ratio", "seeds", "pretrain min/run"]
    )
    return _common.markdown_table(header, rows)


def compared_tags(results):
    """`(pid_tags, baseline_tags)` of `results`, in order: what `paired_rows` pairs."""
    tags = tags_in_order(results)
    pid = [t for t in tags if t.split(":")[0] == "pid"]
    return pid, [t for t in tags if t.split(":")[0] in ("barlow_twins", "vicreg")]


def paired_rows(results, names, pid_tags, baseline_tags):
    """Rows `PID tag - baseline tag`, per metric: mean [95% CI] (n) and per-seed diffs."""
    rows = []
    for pid_tag in pid_tags:
        for base_tag in baseline_tags:
            a = {r["seed"]: r for r in results if r["tag"] == pid_tag}
            b = {r["seed"]: r for r in results if r["tag"] == base_tag}
            seeds = sorted(set(a) & set(b))
            if not seeds:
                continue
            cells = []
            for m in names:
                d = _common.paired_difference(
                    [a[s]["metrics"][m] for s in seeds], [b[s]["metrics"][m] for s in seeds]
                )
                interval = f" [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]" if d["n"] > 1 else ""
                cells.append(
                    f"{100 * d['mean']:+.2f}{interval} ("
                    + ", ".join(f"{100 * x:+.2f}" for x in d["diffs"])
                    + ")"
                )
            rows.append([f"{a[seeds[0]]['label']} - {b[seeds[0]]['label']}", len(seeds)] + cells)
    return rows


def floor_check(results, metric, margin=0.02):
    """`(lines, all_pass)`: each method's margin over each floor on `metric`."""
    means = {
        tag: _common.mean_std([r["metrics"][metric] for r in results if r["tag"] == tag])[0]
        for tag in tags_in_order(results)
    }
    lines, all_pass = [], True
    floors = [f for f in FLOORS if f in means]
    for tag in means:
        if tag in FLOORS:
            continue
        label = next(r["label"] for r in results if r["tag"] == tag)
        margins = {f: means[tag] - means[f] for f in floors}
        ok = bool(floors) and all(m >= margin for m in margins.values())
        all_pass &= ok
        shown = ", ".join(f"{100 * m:+.2f} pts over {f}" for f, m in margins.items())
        lines.append(f"- {label}: {shown or 'no floor run'} -> {'beats' if ok else 'does NOT beat'}"
                     f" both floors by {100 * margin:g} points")  # fmt: skip
    return lines, all_pass


def test_reads(args):
    path = os.path.join(args.runs_dir, "test_reads.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_report(results, args, info, data, started, path_md):
    split = "test" if args.final else "validation"
    names = metric_names(args)
    headline = headline_metric(args)
    pid_tags, base_tags = compared_tags(results)
    floor_lines, all_pass = floor_check(results, headline)
    code = code_state()
    b = budget(args)
    reads = test_reads(args)
    text = "\n".join(
        [
            f"# Fashion-MNIST learning quality ({split} split)",
            "",
            _common.machine_line(info),
            f"Wall time of this invocation: {(time.time() - started) / 60:.1f} min "
            "(cached runs are reused).",
            "",
            f"Command: `{_common.command_line()}`",
            "",
            f"Code: git commit `{code['commit']}`"
            + (
                f" with uncommitted changes in {len(code['dirty'])} package file(s) "
                f"({', '.join(code['dirty'][:3])}{', ...' if len(code['dirty']) > 3 else ''})"
                if code["dirty"]
                else ""
            )
            + f"; package source sha256 `{code['package_source'][:16]}`, benchmark source "
            f"`{code['benchmark_source'][:16]}`.",
            "",
            f"Protocol: validation = a class-stratified {100 * args.val_fraction:g}% of the "
            f"training set (seed {args.split_seed}; {data['validation_images']} images, "
            f"{data['validation_per_class']} per class); pretraining on the first "
            f"{b['train_subset'] or data['pool_images']} of the other {data['pool_images']} "
            "images, which are also the labelled bank of every probe. Evaluated on the "
            f"{split} split"
            + (f" (first {args.eval_images} images)" if args.eval_images else "")
            + ("; settings were selected on validation (sweep_pid.py)." if args.final else "."),
            "",
            f"Budget: {json.dumps(b)}",
            "",
            "Mean ± sample std over seeds, top-1 %. `linear_P%`: logistic regression on "
            "standardised frozen features of a class-stratified P% of the bank (seeded per "
            "run); `knn_kK`: weighted cosine kNN (T=0.1) over the whole bank; `finetune_P%`: "
            "`kps.evaluation.finetune` on the same P% subset. PID atoms: the last epoch's "
            "loss diagnostics (projector embeddings, nats; PID runs only).",
            "",
            summary_table(results, names),
            "",
            "Paired differences PID - baseline per seed (points): mean [95% t-interval over "
            "seeds] (per-seed differences).",
            "",
            _common.markdown_table(
                ["difference", "seeds"] + names, paired_rows(results, names, pid_tags, base_tags)
            ),
            "",
            f"Floors on `{headline}` (every method must beat both by >= 2 points): "
            + ("all methods do." if all_pass else "NOT all methods do."),
            "",
            *floor_lines,
            "",
            f"Test-split reads logged in {os.path.relpath(args.runs_dir, _common.REPO_ROOT)}/"
            f"test_reads.jsonl: {len(reads)} evaluations of "
            f"{len({r['of'] for r in reads})} runs.",
            "",
        ]
    )
    _common.write_text(path_md, text)
    _common.write_text(
        os.path.splitext(path_md)[0] + ".json",
        json.dumps({"machine": info, "budget": b, "code": code, "runs": results}, indent=1),
    )
    return floor_lines, all_pass


# Final configurations -------------------------------------------------------------------


def final_configs(args, methods):
    """PID default, and for each method its setting selected on validation (`--selected`)."""
    configs = [entry(m) for m in methods]
    if not args.selected:
        return configs
    selection = _read_json(args.selected)
    theirs, ours = selection_budget(selection["budget"]), budget_for_selection(args)
    if theirs != json.loads(json.dumps(ours)):
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ValueError(
            f"{args.selected} was selected at another budget (differs in {diff}); rerun "
            "sweep_pid.py with these flags, or pass the sweep's flags here."
        )
    out = []
    for method in methods:
        chosen = selection["selected"].get(method)
        if chosen is None:
            out.append(entry(method))
            continue
        weight = f", w_syn {chosen['w_syn']:g}" if "w_syn" in chosen else ""
        label = f"{method} selected ({chosen['lever']}{weight}, lr {chosen['lr']:g})"
        picked = entry(method, chosen["lever"], chosen["lr"], tag=f"{method}:selected", label=label)
        if "grad_ratio_target" in LEVERS[method][chosen["lever"]]:
            if "w_syn" not in chosen:
                raise ValueError(
                    f"{args.selected}: the selected {chosen['lever']!r} names no w_syn (the "
                    "weight its calibration chose); rerun sweep_pid.py, which records it."
                )
            picked["w_syn"] = chosen["w_syn"]
        if method == "pid":
            if chosen["lever"] == "default" and chosen["lr"] == base_lr(args):
                # The selection is the default: one configuration, not two copies.
                out.append(entry(method, label="pid (default; also the selected setting)"))
                continue
            out.append(entry(method))
        out.append(picked)
    return out


def budget_for_selection(args):
    """The budget a selection holds for: all of `budget` but the evaluation size and the
    evaluations that do not select (kNN, fine-tuning)."""
    return selection_budget(budget(args))


def selection_budget(full):
    return {k: v for k, v in full.items() if k not in ("eval_images", "knn_k", *FINETUNE_KEYS)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_budget_flags(parser)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--floors", default=",".join(FLOORS), help="Comma list (empty: none).")
    parser.add_argument(
        "--selected", default=None, help="Selection JSON written by sweep_pid.py (tuning.json)."
    )
    parser.add_argument(
        "--final", action="store_true", help="Evaluate on the test split (once per config)."
    )
    parser.add_argument("--output", default=None, help="Default: results/fashion_mnist[_val].md")
    args = apply_smoke(parser.parse_args(argv))
    methods = [m for m in args.methods.split(",") if m]
    floors = [f for f in args.floors.split(",") if f]
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"--methods: unknown {m!r}; expected some of {METHODS}")
    for f in floors:
        if f not in FLOORS:
            raise ValueError(f"--floors: unknown {f!r}; expected some of {FLOORS}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1 (2+ for intervals). Received: {args.seeds}")
    started = time.time()
    code_state()
    if args.smoke:
        return smoke(args, methods, floors, started)
    output = shard_path(
        args,
        args.output
        or os.path.join(
            _common.RESULTS_DIR, "fashion_mnist.md" if args.final else "fashion_mnist_val.md"
        ),
    )
    return run_protocol(args, methods, floors, output, started)


def run_protocol(args, methods, floors, output, started):
    info = _common.machine()
    _common.emit({"benchmark": "machine", **info, "code": code_state()})
    data = prepare_data(args)
    split = "test" if args.final else "validation"
    configs = final_configs(args, methods)
    floor_configs = [entry_floor(f) for f in floors]
    results, floor_lines, all_pass = [], [], False
    # Work items (seed, configuration), dealt round-robin over the --shard parts,
    # so each part gets its share of every seed and of the slow PID runs.
    items = [(seed, c) for seed in range(args.seeds) for c in floor_configs + configs]
    for index, (seed, config) in enumerate(items):
        if in_shard(args, index):
            result = run_config(config, seed, args, data, split)
            results.append(result)
            _common.emit(result)
            floor_lines, all_pass = write_report(results, args, info, data, started, output)
    print("\n".join(floor_lines), flush=True)
    return results, all_pass


def entry_floor(floor):
    return {"tag": floor, "label": FLOOR_LABELS[floor], "method": floor, "lever": None, "lr": None}


def smoke(args, methods, floors, started):
    """Tuning on validation, then the final configurations on test, on tiny subsets."""
    import sweep_pid

    tuning = copy.copy(args)
    tuning.seeds = 1
    tuning.final = False
    selection_path = os.path.join(args.runs_dir, "tuning.json")
    sweep_pid.run_sweep(
        tuning,
        methods,
        {m: SMOKE_LEVERS[m] for m in methods},
        [base_lr(args)],
        os.path.join(args.runs_dir, "sweep.md"),
        selection_path,
        started,
    )
    args.selected = selection_path
    args.final = True
    results, all_pass = run_protocol(
        args, methods, floors, os.path.join(args.runs_dir, "fashion_mnist.md"), started
    )
    print(f"smoke: whole protocol in {(time.time() - started) / 60:.1f} min", flush=True)
    return results, all_pass


if __name__ == "__main__":
    main()
