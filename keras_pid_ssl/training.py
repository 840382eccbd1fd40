"""Pretraining end to end: data, model, optimizer, monitors, resume, export.

`pretrain(output_dir, config)` runs a `kps.PretrainConfig` (the `kps pretrain`
command, `kps.pretrain` and `recipes/pretrain_cifar.py` call it) as a short
sequence of steps: records, process set-up, data, model, callbacks, fit,
save, summary. It writes into `output_dir`:

    backup/            atomic per-epoch backups (resume after a kill)
    .lock              PID and host of the process running in this folder
    run_config.json    the configuration, checked when the run resumes
    history.csv        one row per finished epoch (kept across resumes)
    tensorboard/       TensorBoard logs
    pid_monitor.*      PID atoms of backbone features (method "pid"), one row per epoch
    probe_curve.png    online linear-probe accuracy per epoch
    model.keras        the final SSL model
    backbone.keras     the final backbone (Keras)
    backbone/          the final backbone as a TF SavedModel (`serve`, `serve_uint8`)
    summary.json       resolved configuration, versions, final metrics, wall time
"""

import contextlib
import csv
import hashlib
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

from keras_pid_ssl import augment as augment_lib
from keras_pid_ssl import backbones as backbones_lib
from keras_pid_ssl import callbacks as callbacks_lib
from keras_pid_ssl import data as data_lib
from keras_pid_ssl import distribute as distribute_lib
from keras_pid_ssl import models as models_lib
from keras_pid_ssl import optimizers as optimizers_lib
from keras_pid_ssl import plots
from keras_pid_ssl import presets
from keras_pid_ssl.config import OPTIMIZERS
from keras_pid_ssl.config import RESUME_FREE_FIELDS
from keras_pid_ssl.config import PretrainConfig
from keras_pid_ssl.config import tensorflow_installed
from keras_pid_ssl.data.image_batches import ImageBatches
from keras_pid_ssl.utils.determinism import make_deterministic
from keras_pid_ssl.utils.validation import check_choice

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None


def build_backbone(name, input_shape, synchronized_bn=False, weights=None, **options):
    """A backbone by name: see `kps.backbones.build`."""
    return backbones_lib.build(
        name, input_shape, synchronized_bn=synchronized_bn, weights=weights, **options
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


# Records: lock, stored configuration, history ----------------------------------


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


MISSING = "<missing>"


def _flat(config):
    """`{"loss_options": {"w_syn": 1}}` -> `{"loss_options.w_syn": 1}` (one level)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update({f"{key}.{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


def check_stored_config(
    output_dir,
    config,
    allow_config_change=False,
    compare=True,
    store=True,
    free_fields=RESUME_FREE_FIELDS,
):
    """Checks `config` against the stored `run_config.json`, then stores it.

    Differences (fields outside `free_fields`; a field present on one side only
    counts, e.g. a file stored by an older version)
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
        old, new = _flat(stored), _flat(config)
        differences = [
            f"{key}: stored {old.get(key, MISSING)!r}, now {new.get(key, MISSING)!r}"
            for key in sorted(set(old) | set(new))
            if key.split(".")[0] not in free_fields
            and old.get(key, MISSING) != new.get(key, MISSING)
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


def pretrain(output_dir, config=None, *, images=None, encoder=None, extra_callbacks=(), **options):
    """Pretrains a backbone as `config` says and exports it. Returns the summary dict.

    `config` is a `kps.PretrainConfig`; `options` are its fields, or arguments
    of the method's loss (e.g. `w_syn=0.5`), and override it. `kps.pretrain`
    is the one-call front end (any data, any backbone); the `kps pretrain`
    command and `recipes/pretrain_cifar.py` call it. `images` (uint8 NumPy
    array, `dataset="array"`) and `encoder` (a `keras.Model`,
    `backbone="custom"`) pass what a configuration cannot name.

    `lr` is the base learning rate per 256 images (scaled linearly by the
    global `batch_size`); `batch_size` is global (split over the replicas of
    `strategy`). A run with the same `output_dir` resumes from its last
    complete epoch, with the same data order and augmentation as an
    uninterrupted run. With `deterministic=True` (see `make_deterministic`)
    the same `seed` gives the same run. `mixed_precision` holds for the run
    only: on return Keras's global dtype policy is the one it was before.

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
    config = _make_config(config, options, images, encoder)
    start = time.time()
    # The scope first: a MultiWorkerMirroredStrategy must exist before
    # TensorFlow runs any op (data loading included).
    scope = distribute_lib.strategy_scope(config.strategy)
    output_dir = _worker_output_dir(output_dir, scope)
    os.makedirs(output_dir, exist_ok=True)
    lock = RunLock(output_dir)
    lock.acquire()
    policy = keras.config.dtype_policy()
    try:
        run = config.resolved()
        finished = _check_records(output_dir, run, images)
        if finished is not None:
            return finished
        _set_up_process(run)
        data = _load_data(run, images)
        # Outside the strategy scope: the pseudo-labels' tf.Variable stays on the host.
        refresh = _pseudo_label_refresh(run, data)
        with scope:
            model = _build_model(run, data, scope, encoder, refresh)
            ssl_data = _ssl_dataset(run, data, refresh)
            backup = callbacks_lib.ResumableBackup(
                os.path.join(output_dir, "backup"), extra_state=refresh
            )
            callbacks, probe = _callbacks(run, data, output_dir, model, ssl_data, backup, refresh)
            history = model.fit(
                ssl_data,
                epochs=run.epochs,
                callbacks=[*callbacks, *extra_callbacks],
                verbose=run.verbose,
                shuffle=False,  # the datasets order each epoch by (seed, epoch)
            )
        _check_finite(history, backup, output_dir)
        export_path = _save(model, output_dir, run, probe)
        return _write_summary(
            output_dir, run, data, scope, history, backup, probe, refresh, export_path, start
        )
    finally:
        # `mixed_precision` is this run's: models built after it get the policy before it.
        keras.config.set_dtype_policy(policy)
        lock.release()


# The steps of `pretrain` ------------------------------------------------------


def _make_config(config, options, images, encoder):
    if config is None:
        config = PretrainConfig.from_options(**options)
    elif options:
        config = PretrainConfig.from_options(**{**config.to_dict(), **options})
    if (images is None) != (config.dataset != "array"):
        raise ValueError(
            "`images` (a uint8 array) goes with dataset='array', and dataset='array' needs "
            f"`images`. Received: dataset={config.dataset!r}, images "
            f"{'given' if images is not None else 'not given'}. kps.pretrain sets both."
        )
    if (encoder is None) == (config.backbone == "custom"):
        raise ValueError(
            "`encoder` (a keras.Model) goes with backbone='custom', and backbone='custom' needs "
            f"`encoder`. Received: backbone={config.backbone!r}, encoder "
            f"{'given' if encoder is not None else 'not given'}. kps.pretrain sets both."
        )
    if images is not None and config.augment is None and np.shape(images)[-1] == 1:
        config = config.replace(augment="grayscale")  # colour jitter needs RGB
    return config


def _check_records(output_dir, config, images):
    """The stored summary of a finished run (after a warning), else None.

    Checks `config`, resolved (every default filled in, so a resume in
    another environment, e.g. without TensorFlow, or by a version with other
    defaults, is caught) and a fingerprint of `images` (`dataset="array"`)
    against the stored ones (see `check_stored_config`).
    """
    finished = finished_summary(output_dir, config.epochs)
    backup_dir = os.path.join(output_dir, "backup")
    trained = finished is not None or (os.path.isdir(backup_dir) and any(os.scandir(backup_dir)))
    record = config.to_dict()
    if images is not None:
        record["images_fingerprint"] = images_fingerprint(images)
    check_stored_config(
        output_dir,
        record,
        config.allow_config_change,
        compare=trained,
        store=finished is None,
        free_fields=config.resume_free_fields(),
    )
    if finished is not None:
        warnings.warn(
            f"The run in {output_dir} is already finished ({config.epochs} epochs, see its "
            "summary.json): nothing to do, its files are left as they are. Use a new "
            "`output_dir`, or more `epochs` with `allow_config_change=True`, to train more.",
            stacklevel=3,
        )
    return finished


def images_fingerprint(images):
    """Shape, dtype and SHA-256 of an image array: which array a run trained on."""
    array = np.ascontiguousarray(images)
    digest = hashlib.sha256(array.tobytes()).hexdigest()[:16]
    return f"{array.shape} {array.dtype} sha256:{digest}"


def _set_up_process(config):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        make_deterministic(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(config.mixed_precision)


class _Data:
    """The run's images: the training set, its labels, and the probe's splits."""

    def __init__(self, images, labels, probe=None):
        self.images, self.labels, self.probe = images, labels, probe
        self.input_shape = tuple(images.shape[1:])


def _load_data(config, images=None):
    if images is None:
        split = {"stl10": "unlabeled", "image_folder": None}.get(config.dataset, "train")
        images, labels = data_lib.load(
            config.dataset, split, data_dir=config.data_dir, image_size=config.image_size
        )
    else:
        images = data_lib.prepare_images(
            np.asarray(images), image_size=config.image_size, method="resize"
        )
        labels = np.full(len(images), -1, dtype=np.int64)
    if config.train_subset is not None:
        if config.train_subset > len(images):
            raise ValueError(
                f"`train_subset`={config.train_subset} exceeds the {len(images)} training "
                f"images of {config.dataset!r}. Use at most {len(images)}, or leave it unset."
            )
        images, labels = images[: config.train_subset], labels[: config.train_subset]
    if len(images) < config.batch_size:
        raise ValueError(
            f"`batch_size`={config.batch_size} is larger than the {len(images)} training "
            "images. Use a smaller batch_size, or more images."
        )
    probe = None
    if labels.min() >= 0 and config.dataset not in ("image_folder", "array"):
        test_images, test_labels = data_lib.load(
            config.dataset, "test", data_dir=config.data_dir, image_size=images.shape[1:3]
        )
        n = config.probe_subset
        probe = ((images[:n], labels[:n]), (test_images[:n], test_labels[:n]))
    return _Data(images, labels, probe)


def _pseudo_label_refresh(config, data):
    """The k-means pseudo-label callback of `pid_target="pseudo_label"`, else None."""
    if config.method != "pid" or config.pid_target != "pseudo_label":
        return None
    num_clusters = config.num_clusters
    if num_clusters is None:
        # The number of classes when known, else the follow-up's 100.
        num_clusters = int(data.labels.max()) + 1 if data.labels.min() >= 0 else 100
    return callbacks_lib.PseudoLabelRefresh(
        data.images,
        config.epochs,
        num_clusters=num_clusters,
        recluster_every=config.recluster_every,
        warmup_epochs=config.pid_warmup_epochs,
        seed=config.seed,
        verbose=config.verbose,
    )


def _build_model(config, data, scope, encoder, refresh):
    synchronized_bn = scope.synchronized_batch_norm
    if encoder is None:
        encoder = build_backbone(
            config.backbone,
            data.input_shape,
            synchronized_bn,
            weights=config.backbone_weights,
            **config.backbone_options,
        )
    kwargs = dict(
        projector_dims=config.projector_dims,
        synchronized_bn=synchronized_bn,
        augment=_device_augmentation(config, data),
    )
    if config.method == "pid":
        kwargs.update(target_momentum=config.target_momentum, base_kwargs=config.base_options)
    model = presets.get(config.method, encoder, **kwargs, **config.loss_options)
    if refresh is not None:
        model = models_lib.PseudoLabelPIDModel.from_pid_model(model, refresh.num_clusters)
    steps_per_epoch = len(data.images) // config.batch_size
    model.compile(
        optimizer=build_optimizer(
            config.optimizer,
            optimizers_lib.scale_learning_rate(config.lr, config.batch_size),
            config.weight_decay,
            config.epochs * steps_per_epoch,
            config.warmup_epochs * steps_per_epoch,
        )
    )
    return model


def _device_augmentation(config, data):
    """The views the model draws on the device (`augmentation="device"`), else None."""
    if config.augmentation != "device":
        return None
    return augment_lib.preset(
        config.augment,
        image_size=data.input_shape[:2],
        target=config.target_view if config.method == "pid" else None,
        seed=config.seed,
    )


def _ssl_dataset(config, data, refresh):
    if config.augmentation == "device":  # uint8 images; the model draws the views
        return ImageBatches(data.images, config.batch_size, seed=config.seed)
    pseudo_label = refresh is not None
    return data_lib.ssl_dataset(
        data.images,
        views="pid" if config.method == "pid" and not pseudo_label else "two",
        augment=config.augment,
        batch_size=config.batch_size,
        target_view=config.target_view,
        seed=config.seed,
        pseudo_labels=refresh.labels if pseudo_label else None,
    )


def _callbacks(config, data, output_dir, model, ssl_data, backup, refresh):
    """The run's callbacks, in order, and its online probe (None without labels)."""
    # Epoch k's batches depend on (seed, k) only, also after a resume.
    callbacks = [callbacks_lib.DataEpoch(ssl_data)]
    if config.method == "pid":
        callbacks.append(
            callbacks_lib.PIDProtocol(
                config.epochs,
                warmup_epochs=config.pid_warmup_epochs,
                transition_epochs=config.pid_transition_epochs,
            )
        )
    if refresh is not None:
        callbacks.append(refresh)
    # The epochs the latest intact backup holds (0: none). Rows of later
    # epochs (a kill after their row, before their backup) go: those epochs
    # run again and write them again.
    found = backup.latest()
    history_path = os.path.join(output_dir, "history.csv")
    rows = trim_history(history_path, 0 if found is None else found[1]["epoch"])
    probe = None
    if data.probe is not None:
        probe = callbacks_lib.OnlineLinearProbe(*data.probe, every=config.probe_every)
        probe.history = probe_history_from_rows(rows, probe.metric_names)
        callbacks.append(probe)
        if config.knn_every:
            callbacks.append(callbacks_lib.KNNMonitor(*data.probe, every=config.knn_every))
    if config.method == "pid" and config.monitor_size:
        callbacks.append(_pid_monitor(config, data, output_dir, model))
    # The epoch's row is written before its backup: a kill between them
    # reruns the epoch, whose old row `trim_history` dropped.
    # The loss and a few key figures on the bar; every term goes to the CSV and TensorBoard.
    callbacks += [
        callbacks_lib.ProgressBar(),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(history_path, append=True),
        backup,
    ]
    if tensorflow_installed():  # Keras's TensorBoard writes with tf.summary
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard")))
    return callbacks, probe


def _pid_monitor(config, data, output_dir, model):
    size = min(config.monitor_size, len(data.images))
    if config.augmentation == "device":
        # Fixed views, the same after a resume: keyed on one step (the step key
        # wraps every 2**21 steps, so a long run's training draws reuse it).
        views = model.draw_views({"images": data.images[-size:]}, training=False, step=10**9)
        batch = {key: keras.ops.convert_to_numpy(value) for key, value in views.items()}
    else:
        batch = next(
            iter(
                data_lib.ssl_dataset(
                    data.images[-size:],
                    views="pid",
                    augment=config.augment,
                    batch_size=size,
                    target_view=config.target_view,
                    shuffle=False,
                    seed=config.seed + 1,
                )
            )
        )
    # The full estimator needs many more samples than the joint dimension
    # (3 x projection_dim) to be nearly unbiased.
    return callbacks_lib.PIDMonitor(
        tuple(batch[key] for key in ("view1", "view2", "target")),
        output_dir=output_dir,
        projection_dim=config.monitor_projection_dim,
    )


def _check_finite(history, backup, output_dir):
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


def _save(model, output_dir, config, probe):
    """Saves the model, the backbone and the plots; returns the SavedModel path or None."""
    model.save(os.path.join(output_dir, "model.keras"))
    model.encoder.save(os.path.join(output_dir, "backbone.keras"))
    export_path = None
    if config.export:
        from keras_pid_ssl.export import export_backbone  # needs TensorFlow

        export_path = export_backbone(model, os.path.join(output_dir, "backbone"))
    if probe is not None:
        plots.plot_probe_curve(probe.history, os.path.join(output_dir, "probe_curve.png"))
    return export_path


def _write_summary(
    output_dir, config, data, scope, history, backup, probe, refresh, export_path, start
):
    rows = read_history(os.path.join(output_dir, "history.csv"))
    # The last finished epoch's metrics, also when this call ran no epoch.
    final = {k: _json_safe(_float(v)) for k, v in (rows[-1] if rows else {}).items()}
    final.pop("epoch", None)
    found = backup.latest()
    if refresh is not None:  # the pseudo-label settings it resolved
        config = config.replace(
            num_clusters=refresh.num_clusters, recluster_every=refresh.recluster_every
        )
    summary = {
        "config": config.to_dict(),
        "versions": versions(),
        "backend": keras.backend.backend(),
        "num_replicas": scope.num_replicas,
        "train_images": int(len(data.images)),
        "input_shape": list(data.input_shape),
        "steps_per_epoch": len(data.images) // config.batch_size,
        "peak_learning_rate": optimizers_lib.scale_learning_rate(config.lr, config.batch_size),
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
