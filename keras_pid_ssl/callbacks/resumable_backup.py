"""Atomic per-epoch backups and resumption after an interruption."""

import json
import math
import os
import re
import shutil
import tempfile
import warnings

import keras


class ResumableBackup(keras.callbacks.Callback):
    """Backs the training state up every epoch, atomically, and resumes from it.

    Like `keras.callbacks.BackupAndRestore`, but a kill at any moment never
    leaves a corrupt or inconsistent latest backup: each backup is written to
    a fresh temporary folder (weights, optimizer state, metrics, the PID
    coefficients and every other variable the model tracks, via
    `model.save_weights`, plus a `state.json` with the epoch and any
    `extra_state`), flushed, and only then published by an atomic
    `os.replace` of the `latest` pointer file. On `fit`, the callback loads
    the latest backup and makes `fit` continue from the next epoch, so no
    finished epoch is lost. Older backups beyond `keep` are deleted. An
    epoch whose loss is NaN or infinite is not backed up, so the last good
    backup stays the latest. With `kps.callbacks.DataEpoch(dataset)` the
    resumed epochs also see the same batches (order and augmentation) as an
    uninterrupted run.

    Args:
        backup_dir: folder of the backups (created if needed).
        keep: number of backups to keep (>= 1).
        extra_state: optional object with `get_state() -> dict` (JSON) and
            `set_state(dict)`, saved and restored with each backup (e.g. the
            pseudo-labels of a clustering callback).

    Example:

    ```python
    model.fit(dataset, epochs=100, callbacks=[kps.callbacks.ResumableBackup("runs/exp/backup")])
    # killed at epoch 57? The same call resumes at epoch 57.
    ```
    """

    def __init__(self, backup_dir, keep=2, extra_state=None):
        super().__init__()
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"`keep` must be an int >= 1. Received: keep={keep!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.keep = keep
        self.extra_state = extra_state
        self.resumed_from_epoch = None
        self._resume_point = None

    @property
    def _pointer(self):
        return os.path.join(self.backup_dir, "latest")

    def _candidates(self):
        """Backup folder names, the `latest` pointer's first, then newest first."""
        names = []
        try:
            with open(self._pointer) as f:
                names.append(f.read().strip())
        except (OSError, UnicodeDecodeError):
            pass
        if os.path.isdir(self.backup_dir):
            folders = sorted(
                (n for n in os.listdir(self.backup_dir) if re.fullmatch(r"epoch-\d{6}", n)),
                reverse=True,
            )
            names += [n for n in folders if n not in names]
        return names

    def _check(self, name):
        """`(folder, state)` of backup `name`; `ValueError` saying what is wrong."""
        folder = os.path.join(self.backup_dir, name)
        match = re.fullmatch(r"epoch-(\d{6})", name)
        if match is None or not os.path.isdir(folder):
            raise ValueError(f"{folder} is not a backup folder")
        path = os.path.join(folder, "state.json")
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} is unreadable ({error})") from error
        if not isinstance(state, dict) or state.get("epoch") != int(match.group(1)):
            raise ValueError(
                f"{path} does not hold the epoch of its folder {name} (it holds {state!r})"
            )
        path = os.path.join(folder, "model.weights.h5")
        try:
            import h5py

            with h5py.File(path, "r") as f:
                f.visit(lambda _: None)
        except (OSError, ValueError, RuntimeError) as error:
            raise ValueError(f"{path} is not a readable weights file ({error})") from error
        return folder, state

    def latest(self):
        """`(folder, state)` of the latest intact backup, or `None` if there is none.

        A corrupt backup (unreadable `state.json` or weights, an epoch that
        does not match its folder) is skipped with a warning naming it, and
        the next newest intact backup is used. Backups that exist but are
        all corrupt raise a `ValueError` naming `backup_dir`.
        """
        if self._resume_point is not None:
            return self._resume_point
        names = self._candidates()
        problems = []
        for name in names:
            try:
                found = self._check(name)
            except ValueError as error:
                problems.append(str(error))
                continue
            if problems:
                warnings.warn(
                    "ResumableBackup: skipping corrupt backup(s): "
                    + "; ".join(problems)
                    + f". Falling back to the intact backup {found[0]} "
                    + f"(epoch {found[1]['epoch']}).",
                    stacklevel=2,
                )
            self._resume_point = found
            return found
        if problems and any(n.startswith("epoch-") for n in names):
            raise ValueError(
                f"No intact backup in {self.backup_dir}: " + "; ".join(problems) + ". "
                "Delete that folder to train from scratch, or restore a backup into it."
            )
        return None

    def _latest_epoch(self):
        found = self.latest()
        return None if found is None else found[1]["epoch"]

    def on_train_begin(self, logs=None):
        found = self.latest()
        # Backups written from now on are newer than this resume point.
        self._resume_point = None
        if found is None:
            return
        folder, state = found
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(os.path.join(folder, "model.weights.h5"))
        except ValueError as error:
            raise ValueError(
                f"Cannot resume from the backup in {folder}: it was written by a model "
                "of another architecture (e.g. other projector widths or backbone). "
                "Use the original settings or a new output folder. Keras said: "
                f"{error}"
            ) from error
        if self.extra_state is not None and "extra" in state:
            self.extra_state.set_state(state["extra"])
        # The attribute `keras.callbacks.BackupAndRestore` sets: `fit` reads
        # it after `on_train_begin` and starts at this epoch.
        self.model._initial_epoch = state["epoch"]
        self.resumed_from_epoch = state["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            # A diverged epoch (e.g. stopped by TerminateOnNaN) must not
            # replace the last good backup.
            warnings.warn(
                f"Epoch {epoch + 1} ended with loss={loss}; the backup of epoch "
                f"{self._latest_epoch()} is kept and no new backup is written.",
                stacklevel=2,
            )
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{epoch + 1:06d}"
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.backup_dir)
        try:
            self.model.save_weights(os.path.join(tmp, "model.weights.h5"))
            state = {"epoch": epoch + 1}
            if self.extra_state is not None:
                state["extra"] = self.extra_state.get_state()
            _write_synced(os.path.join(tmp, "state.json"), json.dumps(state))
            final = os.path.join(self.backup_dir, name)
            if os.path.exists(final):
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _write_synced(self._pointer + ".tmp", name)
        os.replace(self._pointer + ".tmp", self._pointer)
        self._resume_point = None
        self._prune(keep_name=name)

    def _prune(self, keep_name):
        backups = sorted(
            n for n in os.listdir(self.backup_dir) if n.startswith("epoch-") and n != keep_name
        )
        for name in backups[: max(0, len(backups) - (self.keep - 1))]:
            shutil.rmtree(os.path.join(self.backup_dir, name), ignore_errors=True)


def _write_synced(path, text):
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
