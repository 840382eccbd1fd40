"""PID atoms of backbone features on a fixed batch of images, once an epoch."""

import csv
import math
import os

import keras
import numpy as np

from keras_pid_ssl.information.gaussian_pid import ATOM_NAMES
from keras_pid_ssl.information.gaussian_pid import gaussian_pid
from keras_pid_ssl.plots import plot_pid_monitor


class PIDMonitor(keras.callbacks.Callback):
    """Logs the `full` Gaussian PID of backbone features at each epoch end.

    The backbone (`model.encoder`) embeds a fixed batch of `(view1, view2,
    target_view)` images (`kps.training.pretrain` uses views of its last
    `monitor_size` training images; a held-out batch suits it as well); a fixed
    random Gaussian projection (seeded) maps the features to `projection_dim`
    dimensions, where the multivariate ("full") estimator is cheap and well
    conditioned; the atoms I(T; F1), I(T; F2), I(T; F1, F2), redundancy, unique
    and synergy (nats) are added to the epoch logs as `monitor_<atom>`,
    appended to `<output_dir>/pid_monitor.csv` and drawn to
    `<output_dir>/pid_monitor.png` (both replaced atomically; the plot has two
    panels, the informations and the atoms, see `kps.plots.plot_pid_monitor`).
    A `fit` resumed at epoch `e` (e.g. by `ResumableBackup`) keeps the CSV's
    rows of epochs 1..e, so the files hold every finished epoch once.

    These are Gaussian estimates of the information between *features* (not
    the projector outputs the loss sees): compare them across epochs and
    runs, not as absolute truths. The estimate is biased upwards unless the
    batch is much larger than the joint dimension `3 * projection_dim`
    (e.g. 1024 images for `projection_dim=16`; with 512 images and 64
    dimensions, values of 15-20 nats are mostly bias).

    Args:
        views: a tuple `(view1, view2, target_view)` of image arrays (the same
            images, augmented) or a `tf.data.Dataset` yielding such batches
            (its first batch is used). Use a few hundred images or more.
        output_dir: folder for the CSV and PNG (None: logs only).
        projection_dim: width of the random projection.
        ridge: ridge of the full estimator.
        every: run every `every` epochs.
        seed: seed of the projection.

    Example:

    ```python
    monitor = kps.callbacks.PIDMonitor((v1, v2, t), output_dir="runs/pid")
    model.fit(pid_dataset, epochs=10, callbacks=[monitor])
    ```
    """

    def __init__(self, views, output_dir=None, projection_dim=64, ridge=1e-3, every=1, seed=0):
        super().__init__()
        if hasattr(views, "take"):
            views = next(iter(views.take(1)))
        views = tuple(np.asarray(v) for v in views)
        if len(views) != 3:
            raise ValueError(
                f"`views` must hold (view1, view2, target_view); received {len(views)} arrays."
            )
        if len({v.shape for v in views}) != 1 or views[0].ndim != 4:
            raise ValueError(
                "`views` must be three image arrays of the same shape "
                f"(batch, height, width, channels); received {[v.shape for v in views]}."
            )
        if views[0].shape[0] < 8:
            raise ValueError(f"`views` needs at least 8 images; received {views[0].shape[0]}.")
        self.views = views
        self.output_dir = output_dir
        self.projection_dim = int(projection_dim)
        self.ridge = ridge
        self.every = int(every)
        self.seed = seed
        self.history = []
        self._projection = None
        self._restored = False

    def _project(self, features):
        if self._projection is None:
            rng = np.random.default_rng(self.seed)
            dim = features.shape[1]
            self._projection = rng.normal(size=(dim, self.projection_dim)).astype("float32")
            self._projection /= np.sqrt(self.projection_dim)
        return features @ self._projection

    def compute_atoms(self):
        """The monitor's atoms (floats, nats) for the current backbone."""
        encoder = self.model.encoder
        features = [
            self._project(np.asarray(encoder.predict(v, batch_size=256, verbose=0), "float32"))
            for v in self.views
        ]
        atoms = gaussian_pid(*features, estimator="full", ridge=self.ridge)
        return {name: float(atoms[name]) for name in ATOM_NAMES}

    def on_train_begin(self, logs=None):
        self._restored = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self._restored:
            self._restored = True
            self.restore_history(epoch)

    def restore_history(self, epochs_done):
        """Keeps the rows of the first `epochs_done` epochs from an existing CSV.

        Called at the first epoch of each `fit`: after a resume at epoch
        `epochs_done`, the rows of the epochs before it (written by the
        killed run) join `history`, and rows of later epochs (which will be
        recomputed) are dropped, so the CSV and plot hold each epoch once.
        """
        path = os.path.join(self.output_dir, "pid_monitor.csv") if self.output_dir else None
        if path is None or not os.path.exists(path):
            return
        with open(path, newline="") as f:
            rows = [
                dict(epoch=int(row["epoch"]), **{k: float(row[k]) for k in ATOM_NAMES})
                for row in csv.DictReader(f)
            ]
        known = {row["epoch"] for row in self.history}
        kept = [r for r in rows if r["epoch"] <= epochs_done and r["epoch"] not in known]
        self.history = sorted(
            kept + [r for r in self.history if r["epoch"] <= epochs_done],
            key=lambda row: row["epoch"],
        )

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return  # a diverged epoch: no atoms of NaN features (TerminateOnNaN stops the run)
        atoms = self.compute_atoms()
        self.history = [row for row in self.history if row["epoch"] != epoch + 1]
        self.history.append(dict(epoch=epoch + 1, **atoms))
        if logs is not None:
            logs.update({f"monitor_{k}": v for k, v in atoms.items()})
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            self._write_csv()
            self._plot()

    def _write_csv(self):
        path = os.path.join(self.output_dir, "pid_monitor.csv")
        with open(path + ".tmp", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=("epoch",) + ATOM_NAMES)
            writer.writeheader()
            writer.writerows(self.history)
        os.replace(path + ".tmp", path)

    def _plot(self):
        plot_pid_monitor(self.history, os.path.join(self.output_dir, "pid_monitor.png"))
