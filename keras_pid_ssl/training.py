"""Pretraining end to end: data, model, optimizer, monitors, resume, export.

`pretrain(...)` is what `recipes/pretrain_cifar.py` calls with its flags; it
is usable from Python too. It writes into `output_dir`:

    backup/            atomic per-epoch backups (resume after a kill)
    .lock              PID and host of the process running in this folder
    run_config.json    the arguments, checked when the run resumes
    history.csv        one row per finished epoch (kept across resumes)
    tensorboard/       TensorBoard logs
    pid_monitor.*      PID atoms of backbone features (method "pid"), one row per epoch
    probe_curve.png    online linear-probe accuracy per epoch
    model.keras        the final SSL model
    backbone.keras     the final backbone (Keras)
    backbone/          the final backbone as a TF SavedModel (`serve`, `serve_uint8`)
    summary.json       configuration, versions, final metrics, wall time
"""

import contextlib
import csv
import io
import json
import math
import os
import platform
import socket
import time
import warnings

import keras
import numpy as np

from keras_pid_ssl import backbones as backbones_lib
from keras_pid_ssl import callbacks as callbacks_lib
from keras_pid_ssl import data as data_lib
from keras_pid_ssl import distribute as distribute_lib
from keras_pid_ssl import models as models_lib
from keras_pid_ssl import optimizers as optimizers_lib
from keras_pid_ssl import presets
from keras_pid_ssl.export import export_backbone
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import check_momentum
from keras_pid_ssl.utils.validation import check_non_negative
from keras_pid_ssl.utils.validation import check_positive
from keras_pid_ssl.utils.validation import check_projector_dims

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None

BACKBONES = ("resnet18", "resnet34", "resnet50", "small_convnet")
OPTIMIZERS = ("lars", "sgd", "adamw")
# PID targets: the target view through the same network ("clean"), through an
# EMA of it ("ema", momentum 0.99 unless given), or a k-means pseudo-label
# ("pseudo_label": PseudoLabelPIDModel + PseudoLabelRefresh, docs/spec.md, section 5).
PID_TARGETS = ("clean", "ema", "pseudo_label")
# Base learning rates per 256 images and weight decays. LARS: solo-learn's
# CIFAR Barlow Twins configuration (lr 0.3, wd 1e-4, eta 0.02).
OPTIMIZER_DEFAULTS = {
    "lars": dict(lr=0.3, weight_decay=1e-4),
    "sgd": dict(lr=0.3, weight_decay=1e-4),
    "adamw": dict(lr=1e-3, weight_decay=1e-4),
}
AUGMENT_FOR_DATASET = {
    "cifar10": "cifar",
    "cifar100": "cifar",
    "stl10": "imagenet",
    "image_folder": "imagenet",
    "fashion_mnist": "grayscale",
}


def build_backbone(name, input_shape, synchronized_bn=False):
    """A backbone by name (`resnet18/34/50` use the CIFAR stem below 64 px)."""
    check_choice("backbone", name, BACKBONES)
    if name == "small_convnet":
        return backbones_lib.SmallConvNet(input_shape=input_shape, synchronized_bn=synchronized_bn)
    variant = "cifar" if min(input_shape[:2]) < 64 else "imagenet"
    return backbones_lib.ResNet(
        depth=int(name[len("resnet") :]),
        variant=variant,
        input_shape=input_shape,
        synchronized_bn=synchronized_bn,
    )


def build_optimizer(name, learning_rate, weight_decay, total_steps, warmup_steps):
    """LARS / SGD / AdamW with a linear warm-up + cosine learning rate."""
    check_choice("optimizer", name, OPTIMIZERS)
    schedule = optimizers_lib.warmup_cosine_decay(
        learning_rate,
        total_steps=total_steps,
        warmup_steps=min(warmup_steps, total_steps - 1),
        final_learning_rate_fraction=0.001,
    )
    if name == "lars":
        return optimizers_lib.LARS(
            learning_rate=schedule, momentum=0.9, weight_decay=weight_decay, eta=0.02
        )
    if name == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=weight_decay)
    return keras.optimizers.AdamW(schedule, weight_decay=weight_decay)


def versions():
    """Versions of the libraries a run depends on."""
    out = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    for module in ("tensorflow", "jax", "torch"):
        try:
            out[module] = __import__(module).__version__
        except ImportError:
            out[module] = None
    from keras_pid_ssl.version import __version__

    out["keras_pid_ssl"] = __version__
    return out


def _json_safe(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _plot_probe_curve(history, path):
    epochs = [row["epoch"] for row in history if "probe_accuracy" in row]
    if not epochs:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(
        epochs, [row["probe_accuracy"] for row in history if "probe_accuracy" in row], marker="o"
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("online linear probe top-1")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _worker_output_dir(output_dir, scope):
    """`output_dir` for the chief; a private sub-folder for other workers.

    Under `multiworker`, every worker runs this function; only the chief
    (task "chief", or worker 0 when there is no chief) writes the run's files.
    """
    resolver = getattr(scope.strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", 0) or 0
    if task_type in (None, "chief") or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    ):
        return output_dir
    return os.path.join(output_dir, "workers", f"{task_type}_{task_id}")


def _check_run_arguments(args):
    """`ValueError`s naming the argument (= the recipe's flag) and what it accepts.

    `args`: `pretrain`'s arguments by name.
    """
    check_int("epochs", args["epochs"], 1)
    check_int("batch_size", args["batch_size"], 2)
    check_choice("optimizer", args["optimizer"], tuple(OPTIMIZER_DEFAULTS))
    if args["lr"] is not None:
        check_positive("lr", args["lr"])
    if args["weight_decay"] is not None:
        check_non_negative("weight_decay", args["weight_decay"])
    check_int("warmup_epochs", args["warmup_epochs"], 0, args["epochs"])
    check_projector_dims(args["projector_dims"])
    for name in ("invariance_weight", "w_joint", "w_red", "w_syn"):
        check_non_negative(name, args[name])
    if args["target_momentum"] is not None:
        check_momentum("target_momentum", args["target_momentum"])
    for name in ("pid_warmup_epochs", "pid_transition_epochs"):
        check_int(name, args[name], 0, args["epochs"], allow_none=True)
    if args["method"] == "pid":
        # PIDProtocol's defaults; the last epoch at least is in the PID stage.
        warm, trans = (
            round(0.1 * args["epochs"]) if args[name] is None else args[name]
            for name in ("pid_warmup_epochs", "pid_transition_epochs")
        )
        if warm + trans >= args["epochs"]:
            raise ValueError(
                "`pid_warmup_epochs` + `pid_transition_epochs` must be less than `epochs` "
                f"(the PID stage needs an epoch). Received: {warm} + {trans}, "
                f"epochs={args['epochs']}"
            )
    check_choice(
        "mixed_precision", args["mixed_precision"], (None, "mixed_float16", "mixed_bfloat16")
    )
    check_int("seed", args["seed"], 0)
    check_int("train_subset", args["train_subset"], args["batch_size"], allow_none=True)
    check_int("probe_subset", args["probe_subset"], 2)
    check_int("probe_every", args["probe_every"], 1)
    check_int("knn_every", args["knn_every"], 0)
    if args["monitor_size"] != 0:
        check_int("monitor_size", args["monitor_size"], 2)
    check_int("monitor_projection_dim", args["monitor_projection_dim"], 1)


# Records: lock, stored configuration, history ----------------------------------

# Arguments that may change between the calls of one run: where things are
# and how much is printed or exported.
RESUME_FREE_ARGUMENTS = ("output_dir", "data_dir", "verbose", "export", "allow_config_change")


def write_atomically(path, text):
    """Writes `text` to `path` through a synced temporary file and `os.replace`."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunLock:
    """An exclusive lock on `<output_dir>/.lock`, which names its owner's PID and host.

    The lock is a `flock` on the file, so the kernel releases it when its
    process dies however it dies (`kill -9`, a preempted container), also
    for a process that comes back with the same PID. `acquire()` raises a
    `RuntimeError` naming the folder and the owner while another process
    holds it; a lock file left by a dead run is taken over with a warning.
    `release()` removes the file. Where `fcntl` does not exist (Windows),
    runs are not locked.
    """

    def __init__(self, output_dir):
        self.output_dir = os.fspath(output_dir)
        self.path = os.path.join(self.output_dir, ".lock")
        self.owner = {"pid": os.getpid(), "host": socket.gethostname()}
        self.fd = None

    @staticmethod
    def _read(fd):
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            return json.loads(os.read(fd, 4096).decode() or "{}")
        except ValueError:
            return {}

    def acquire(self):
        if fcntl is None:
            return self
        for _ in range(3):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = self._read(fd)
                os.close(fd)
                raise RuntimeError(
                    f"The output folder {self.output_dir} is in use by process "
                    f"{other.get('pid')} on host {other.get('host')} (lock file {self.path}). "
                    "Two runs on one folder would mix their records: wait for it to end, "
                    "stop it, or use another `output_dir`."
                ) from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # released and removed while we opened it: try again
                os.close(fd)
                continue
            previous = self._read(fd)
            if previous.get("pid") is not None and previous != self.owner:
                warnings.warn(
                    f"Taking over the stale lock {self.path} of process {previous.get('pid')} "
                    f"on host {previous.get('host')}, which ended without releasing it (a "
                    "killed run); resuming in this folder.",
                    stacklevel=3,
                )
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(self.owner).encode())
            os.fsync(fd)
            self.fd = fd
            return self
        raise RuntimeError(f"Could not take the lock {self.path}; another process keeps taking it.")

    def release(self):
        if self.fd is None:
            return
        # Removed while still held, so no other process can lock this file's inode.
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _normalised(config):
    return json.loads(json.dumps(config, default=str))


def check_stored_config(output_dir, config, allow_config_change=False, compare=True, store=True):
    """Checks `config` against the stored `run_config.json`, then stores it.

    Differences (arguments outside `RESUME_FREE_ARGUMENTS`, present in both)
    raise a `ValueError` naming each, unless `allow_config_change`, which
    warns. `compare=False` (nothing has trained in `output_dir` yet, e.g. an
    earlier attempt failed while loading data) skips the check; `store=False`
    leaves the stored file as it is (a finished run).
    """
    path = os.path.join(output_dir, "run_config.json")
    config = _normalised(config)
    if compare and os.path.exists(path):
        try:
            with open(path) as f:
                stored = json.load(f)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{path} is unreadable ({error}): the configuration of the run in "
                f"{output_dir} is unknown. Restore it, or delete it to store this one."
            ) from error
        differences = [
            f"{key}: stored {stored[key]!r}, now {config[key]!r}"
            for key in sorted(set(stored) & set(config))
            if key not in RESUME_FREE_ARGUMENTS and stored[key] != config[key]
        ]
        if not differences:
            store = False
        listed = "; ".join(differences)
        if differences and not allow_config_change:
            raise ValueError(
                f"The run in {output_dir} was started with another configuration ({listed}). "
                "Resuming it with these settings would mix two runs. Use the stored settings, "
                "a new `output_dir`, or `allow_config_change=True` (the recipe's "
                "--allow_config_change) to resume anyway."
            )
        if differences:
            warnings.warn(
                f"Resuming the run in {output_dir} with a changed configuration ({listed}), "
                "as `allow_config_change=True` asks.",
                stacklevel=3,
            )
    if store:
        write_atomically(path, json.dumps(config, indent=2))


def finished_summary(output_dir, epochs):
    """The stored summary when the run in `output_dir` has done its `epochs`, else None."""
    path = os.path.join(output_dir, "summary.json")
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    done = summary.get("epochs_completed") if isinstance(summary, dict) else None
    return summary if isinstance(done, int) and done >= epochs else None


def read_history(path):
    """The rows (dicts of strings) of a `CSVLogger` file; [] if there is none."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def trim_history(path, epochs_done):
    """Keeps the rows of epochs `0 .. epochs_done - 1` of a `CSVLogger` file.

    Each epoch is kept once (its last row). The file is rewritten
    atomically, and only if something changes. Returns the kept rows.
    """
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    if not lines:
        return []
    header, rows = lines[0], lines[1:]
    column = header.index("epoch")
    by_epoch = {}
    for number, row in enumerate(rows):
        whole = len(row) == len(header) and row[column].isdigit()
        if not whole and number < len(rows) - 1:
            # A kill can cut only the last row: another malformed row means the
            # columns changed between runs, and dropping it would lose an epoch.
            raise ValueError(
                f"{path}: row {number + 2} has {len(row)} fields where the header has "
                f"{len(header)} ({header}). The logged metrics changed between runs on this "
                "folder (other callbacks or settings); resume with the original settings, "
                "or move the file away."
            )
        # A row cut by a kill has fewer fields (or a cut epoch number): dropped.
        if whole and int(row[column]) < epochs_done:
            by_epoch[int(row[column])] = row
    kept = [by_epoch[e] for e in sorted(by_epoch)]
    if kept != rows:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *kept])
        write_atomically(path, out.getvalue())
    return [dict(zip(header, row, strict=True)) for row in kept]


def _float(text):
    try:
        return float(text)
    except ValueError:
        return text


def probe_history_from_rows(rows, metric_names):
    """`OnlineLinearProbe.history` rebuilt from `history.csv` rows (evaluated epochs)."""
    history = []
    for row in rows:
        values = {name: _float(row.get(name, "nan")) for name in metric_names}
        if all(isinstance(v, float) and math.isfinite(v) for v in values.values()):
            history.append(dict(epoch=int(row["epoch"]) + 1, **values))
    return history


def make_deterministic():
    """Makes training ops deterministic, as far as each backend allows.

    TensorFlow: `tf.config.experimental.enable_op_determinism()` (every op
    deterministic or an error; also covers the `tf.data` pipeline on every
    backend). PyTorch: `torch.use_deterministic_algorithms(True,
    warn_only=True)`. JAX: XLA is deterministic on CPU; on GPU set
    `XLA_FLAGS=--xla_gpu_deterministic_ops=true` before starting Python.
    The setting is process-wide. With a fixed seed, `pretrain` on the
    TensorFlow backend on a CPU then repeats its loss history exactly (tested).
    """
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    if keras.backend.backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def pretrain(
    output_dir,
    dataset="cifar10",
    data_dir=None,
    method="pid",
    backbone="resnet18",
    epochs=1000,
    batch_size=256,
    optimizer="lars",
    lr=None,
    weight_decay=None,
    warmup_epochs=10,
    projector_dims=(2048, 2048, 2048),
    base="barlow_twins",
    invariance_weight=1.0,
    w_joint=0.0,
    w_red=0.0,
    w_syn=1.0,
    units="r2",
    target_view="clean",
    target_momentum=None,
    pid_target="clean",
    num_clusters=None,
    recluster_every=None,
    pid_warmup_epochs=None,
    pid_transition_epochs=None,
    augment=None,
    image_size=None,
    mixed_precision=None,
    strategy="none",
    seed=0,
    deterministic=True,
    train_subset=None,
    probe_subset=10000,
    probe_every=1,
    knn_every=5,
    monitor_size=1024,
    monitor_projection_dim=16,
    export=True,
    extra_callbacks=(),
    verbose=1,
    allow_config_change=False,
):
    """Pretrains a backbone with `method` and exports it. Returns the summary dict.

    Most arguments are flags of `recipes/pretrain_cifar.py` of the same name;
    see its `--help` for each. `lr` is the base learning rate per 256 images
    (scaled linearly by the global `batch_size`); `batch_size` is global
    (split over the replicas of `strategy`). A run with the same
    `output_dir` resumes from its last complete epoch, with the same data
    order and augmentation as an uninterrupted run. With `deterministic=True`
    (see `make_deterministic`) the same `seed` gives the same run.

    The run's records are complete: `history.csv`, `pid_monitor.csv` and
    the probe history hold every finished epoch exactly once, whatever the
    moment of a kill (rows of an epoch the latest backup does not hold are
    dropped on resume and written again when the epoch reruns). A lock file
    (`output_dir/.lock`) refuses a second process on the same folder (a
    lock left by a dead process is taken over with a warning).
    `run_config.json` stores the configuration: a resume with another one
    (seed, method, data, architecture, ...) is refused, naming the
    differences, unless `allow_config_change=True`. Rerunning a finished
    run warns "already finished" and returns the stored summary, leaving
    every file as it was.

    Example:

    ```python
    summary = kps.training.pretrain("runs/fmnist", dataset="fashion_mnist",
                                    backbone="small_convnet", epochs=5,
                                    batch_size=256, optimizer="adamw")
    ```
    """
    config = {k: v for k, v in locals().items() if k != "extra_callbacks"}
    check_choice("method", method, tuple(presets.METHODS))
    check_choice("dataset", dataset, tuple(AUGMENT_FOR_DATASET))
    check_choice("pid_target", pid_target, PID_TARGETS)
    _check_run_arguments(config)
    if target_momentum is None:
        target_momentum = 0.99 if pid_target == "ema" else 0.0
    if pid_target == "pseudo_label" and (method != "pid" or target_momentum > 0):
        raise ValueError(
            "`pid_target='pseudo_label'` needs method='pid' and no EMA target. Received: "
            f"method={method!r}, target_momentum={target_momentum}"
        )
    pseudo_label = method == "pid" and pid_target == "pseudo_label"
    start = time.time()
    # The scope first: a MultiWorkerMirroredStrategy must exist before
    # TensorFlow runs any op (data loading included).
    scope = distribute_lib.strategy_scope(strategy)
    output_dir = _worker_output_dir(output_dir, scope)
    os.makedirs(output_dir, exist_ok=True)
    lock = RunLock(output_dir)
    lock.acquire()
    try:
        finished = finished_summary(output_dir, epochs)
        backup_dir = os.path.join(output_dir, "backup")
        trained = finished is not None or (
            os.path.isdir(backup_dir) and any(os.scandir(backup_dir))
        )
        check_stored_config(
            output_dir, config, allow_config_change, compare=trained, store=finished is None
        )
        if finished is not None:
            warnings.warn(
                f"The run in {output_dir} is already finished ({epochs} epochs, see its "
                "summary.json): nothing to do, its files are left as they are. Use a new "
                "`output_dir`, or more `epochs` with `allow_config_change=True`, to train more.",
                stacklevel=2,
            )
            return finished
        keras.utils.set_random_seed(seed)
        if deterministic:
            make_deterministic()
        if mixed_precision:
            keras.mixed_precision.set_global_policy(mixed_precision)

        pretrain_split = "unlabeled" if dataset == "stl10" else "train"
        if dataset == "image_folder":
            pretrain_split = None
        images, labels = data_lib.load(
            dataset, pretrain_split, data_dir=data_dir, image_size=image_size
        )
        if train_subset is not None:
            if train_subset > len(images):
                raise ValueError(
                    f"`train_subset`={train_subset} exceeds the {len(images)} training images "
                    f"of {dataset!r}. Use at most {len(images)}, or leave it unset for all."
                )
            images, labels = images[:train_subset], labels[:train_subset]
        if len(images) < batch_size:
            raise ValueError(
                f"`batch_size`={batch_size} is larger than the {len(images)} training images."
            )
        input_shape = tuple(images.shape[1:])
        steps_per_epoch = len(images) // batch_size
        defaults = OPTIMIZER_DEFAULTS[optimizer]
        lr = defaults["lr"] if lr is None else lr
        weight_decay = defaults["weight_decay"] if weight_decay is None else weight_decay
        config.update(lr=lr, weight_decay=weight_decay, target_momentum=target_momentum)
        refresh = None
        if pseudo_label:
            if num_clusters is None:
                # The number of classes when known, else the follow-up's 100.
                num_clusters = int(labels.max()) + 1 if labels.min() >= 0 else 100
            # Outside the strategy scope: the labels' tf.Variable stays on the host.
            refresh = callbacks_lib.PseudoLabelRefresh(
                images,
                epochs,
                num_clusters=num_clusters,
                recluster_every=recluster_every,
                warmup_epochs=pid_warmup_epochs,
                seed=seed,
                verbose=verbose,
            )
            config.update(num_clusters=num_clusters, recluster_every=refresh.recluster_every)

        with scope:
            peak_lr = optimizers_lib.scale_learning_rate(lr, batch_size)
            ssl_data = data_lib.ssl_dataset(
                images,
                views="pid" if method == "pid" and not pseudo_label else "two",
                augment=augment or AUGMENT_FOR_DATASET[dataset],
                batch_size=batch_size,
                target_view=target_view,
                seed=seed,
                pseudo_labels=refresh.labels if pseudo_label else None,
            )
            synchronized_bn = scope.synchronized_batch_norm
            encoder = build_backbone(backbone, input_shape, synchronized_bn=synchronized_bn)
            kwargs = dict(projector_dims=tuple(projector_dims), synchronized_bn=synchronized_bn)
            if method == "pid":
                kwargs.update(
                    base=base,
                    invariance_weight=invariance_weight,
                    w_joint=w_joint,
                    w_red=w_red,
                    w_syn=w_syn,
                    units=units,
                    target_momentum=target_momentum,
                )
            model = presets.get(method, encoder, **kwargs)
            if pseudo_label:
                model = models_lib.PseudoLabelPIDModel.from_pid_model(model, num_clusters)
            model.compile(
                optimizer=build_optimizer(
                    optimizer,
                    peak_lr,
                    weight_decay,
                    epochs * steps_per_epoch,
                    warmup_epochs * steps_per_epoch,
                )
            )

            # Epoch k's batches depend on (seed, k) only, also after a resume.
            run_callbacks = [callbacks_lib.DataEpoch(ssl_data)]
            if method == "pid":
                run_callbacks.append(
                    callbacks_lib.PIDProtocol(
                        epochs,
                        warmup_epochs=pid_warmup_epochs,
                        transition_epochs=pid_transition_epochs,
                    )
                )
            if pseudo_label:
                run_callbacks.append(refresh)
            backup = callbacks_lib.ResumableBackup(
                os.path.join(output_dir, "backup"), extra_state=refresh
            )
            # The epochs the latest intact backup holds (0: none). Rows of
            # later epochs (a kill after their row, before their backup) go:
            # those epochs run again and write them again.
            found = backup.latest()
            rows = trim_history(
                os.path.join(output_dir, "history.csv"), 0 if found is None else found[1]["epoch"]
            )
            probe = None
            if labels.min() >= 0 and dataset != "image_folder":
                test_images, test_labels = data_lib.load(
                    dataset, "test", data_dir=data_dir, image_size=input_shape[:2]
                )
                train_probe = (images[:probe_subset], labels[:probe_subset])
                test_probe = (test_images[:probe_subset], test_labels[:probe_subset])
                probe = callbacks_lib.OnlineLinearProbe(train_probe, test_probe, every=probe_every)
                probe.history = probe_history_from_rows(rows, probe.metric_names)
                run_callbacks.append(probe)
                if knn_every:
                    run_callbacks.append(
                        callbacks_lib.KNNMonitor(train_probe, test_probe, every=knn_every)
                    )
            if method == "pid" and monitor_size:
                monitor_batch = next(
                    iter(
                        data_lib.ssl_dataset(
                            images[-monitor_size:],
                            views="pid",
                            augment=augment or AUGMENT_FOR_DATASET[dataset],
                            batch_size=min(monitor_size, len(images)),
                            target_view=target_view,
                            shuffle=False,
                            seed=seed + 1,
                        )
                    )
                )
                monitor_batch = tuple(monitor_batch[key] for key in ("view1", "view2", "target"))
                # The full estimator needs many more samples than the joint
                # dimension (3 x projection_dim) to be nearly unbiased.
                run_callbacks.append(
                    callbacks_lib.PIDMonitor(
                        monitor_batch, output_dir=output_dir, projection_dim=monitor_projection_dim
                    )
                )
            # The epoch's row is written before its backup: a kill between
            # them reruns the epoch, whose old row `trim_history` dropped.
            run_callbacks += [
                keras.callbacks.TerminateOnNaN(),
                keras.callbacks.CSVLogger(os.path.join(output_dir, "history.csv"), append=True),
                backup,
                keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard")),
                *extra_callbacks,
            ]
            history = model.fit(ssl_data, epochs=epochs, callbacks=run_callbacks, verbose=verbose)
        losses = history.history.get("loss", [])
        if losses and not math.isfinite(losses[-1]):
            found = backup.latest()
            kept = "no backup" if found is None else f"the backup of epoch {found[1]['epoch']}"
            raise FloatingPointError(
                f"Training diverged: the loss of epoch {history.epoch[-1]} is {losses[-1]} and "
                "TerminateOnNaN stopped the run. Nothing was exported; "
                f"{kept} in {os.path.join(output_dir, 'backup')} is intact. Lower `lr`, use "
                "`mixed_precision=None`, or check the data, then rerun to resume."
            )

        model.save(os.path.join(output_dir, "model.keras"))
        model.encoder.save(os.path.join(output_dir, "backbone.keras"))
        export_path = None
        if export:
            export_path = export_backbone(model, os.path.join(output_dir, "backbone"))
        if probe is not None:
            _plot_probe_curve(probe.history, os.path.join(output_dir, "probe_curve.png"))
        rows = read_history(os.path.join(output_dir, "history.csv"))
        # The last finished epoch's metrics, also when this call ran no epoch.
        final = {k: _json_safe(_float(v)) for k, v in (rows[-1] if rows else {}).items()}
        final.pop("epoch", None)
        found = backup.latest()
        summary = {
            "config": config,
            "versions": versions(),
            "backend": keras.backend.backend(),
            "num_replicas": scope.num_replicas,
            "train_images": int(len(images)),
            "steps_per_epoch": steps_per_epoch,
            "peak_learning_rate": peak_lr,
            "resumed_from_epoch": backup.resumed_from_epoch,
            "epochs_run_this_call": len(history.epoch),
            "epochs_completed": 0 if found is None else found[1]["epoch"],
            "final_metrics": final,
            "probe_history": probe.history if probe is not None else None,
            "pseudo_label_refreshes": refresh.history if refresh is not None else None,
            "export": export_path,
            "wall_time_s": time.time() - start,
        }
        write_atomically(
            os.path.join(output_dir, "summary.json"), json.dumps(summary, indent=2, default=str)
        )
        return summary
    finally:
        lock.release()
