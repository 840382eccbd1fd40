"""A run's records survive kills and reruns: every finished epoch exactly once.

Fault tests of `kps.training.pretrain`: `kill -9` between an epoch's
`history.csv` row and its backup, a rerun of a finished run, a second
process on the same folder, a resume with another configuration.
"""

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SETTINGS = dict(
    dataset="fashion_mnist",
    method="pid",
    backbone="small_convnet",
    backbone_options={"widths": [4, 8]},
    epochs=3,
    batch_size=16,
    optimizer="adamw",
    warmup_epochs=1,
    projector_dims=(16, 8),
    pid_warmup_epochs=1,
    pid_transition_epochs=1,
    train_subset=48,
    probe_subset=32,
    knn_every=0,
    monitor_size=32,
    monitor_projection_dim=4,
    export=False,
    verbose=0,
)

# The process dies (SIGKILL) in epoch `kill_epoch`'s backup, after its
# history.csv and pid_monitor.csv rows are written, before its backup.
KILLED_RUN = """
import os, signal, sys
import keras_pid_ssl as kps

output_dir, data_dir, kill_epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = eval(sys.argv[4])
original = kps.callbacks.ResumableBackup.on_epoch_end

def dying(self, epoch, logs=None):
    if epoch == kill_epoch:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, epoch, logs)

kps.callbacks.ResumableBackup.on_epoch_end = dying
kps.training.pretrain(output_dir, data_dir=data_dir, **settings)
"""


def _pretrain(output_dir, data_dir, **kwargs):
    return kps.training.pretrain(str(output_dir), data_dir=data_dir, **{**SETTINGS, **kwargs})


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class LockWitness(keras.callbacks.Callback):
    """Reads the lock file while the run trains."""

    def __init__(self, path):
        super().__init__()
        self.path, self.owner = path, None

    def on_train_begin(self, logs=None):
        with open(self.path) as f:
            self.owner = json.load(f)


@pytest.fixture(scope="module")
def finished_run(tiny_fashion_mnist, tmp_path_factory):
    """An uninterrupted 3-epoch run: the reference of the fault tests."""
    run = tmp_path_factory.mktemp("records") / "reference"
    witness = LockWitness(os.path.join(run, ".lock"))
    summary = _pretrain(run, tiny_fashion_mnist, extra_callbacks=[witness])
    return run, summary, witness


def test_run_holds_a_lock_and_rerun_of_a_finished_run_keeps_its_record(
    finished_run, tiny_fashion_mnist
):
    run, summary, witness = finished_run
    # The lock held this process's PID during the run and is gone after it.
    assert witness.owner == {"pid": os.getpid(), "host": socket.gethostname()}
    assert not os.path.exists(os.path.join(run, ".lock"))
    rows = _rows(os.path.join(run, "history.csv"))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    # final_metrics are the last history row's values.
    assert summary["final_metrics"]["loss"] == float(rows[-1]["loss"])
    assert summary["epochs_completed"] == 3
    assert [p["epoch"] for p in summary["probe_history"]] == [1, 2, 3]

    names = ("summary.json", "history.csv", "pid_monitor.csv", "run_config.json")
    before = {name: _read(os.path.join(run, name)) for name in names}
    with pytest.warns(UserWarning, match="already finished"):
        again = _pretrain(run, tiny_fashion_mnist)
    for name in names:
        assert _read(os.path.join(run, name)) == before[name], name
    assert again == json.loads(before["summary.json"])
    assert again["final_metrics"] and again["probe_history"]


def test_kill_between_history_row_and_backup_then_resume(
    finished_run, tiny_fashion_mnist, tmp_path
):
    reference, _, _ = finished_run
    run = tmp_path / "killed"
    result = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(run), tiny_fashion_mnist, "1", repr(SETTINGS)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    # Epoch 1's row is written, its backup is not; the lock stays behind.
    assert [int(r["epoch"]) for r in _rows(run / "history.csv")] == [0, 1]
    assert [int(r["epoch"]) for r in _rows(run / "pid_monitor.csv")] == [1, 2]
    with open(run / "backup" / "latest") as f:
        assert f.read() == "epoch-000001"
    assert os.path.exists(run / ".lock")

    with pytest.warns(UserWarning, match="stale lock"):
        summary = _pretrain(run, tiny_fashion_mnist)
    assert summary["resumed_from_epoch"] == 1 and summary["epochs_run_this_call"] == 2

    # Every finished epoch exactly once, with an uninterrupted run's values.
    for name, first in (("history.csv", 0), ("pid_monitor.csv", 1)):
        rows, expected = _rows(run / name), _rows(reference / name)
        assert [int(r["epoch"]) for r in rows] == list(range(first, first + 3)), name
        assert rows[0].keys() == expected[0].keys()
        for key in ("loss", "redundancy", "synergy"):
            if key in expected[0]:
                np.testing.assert_allclose(
                    [float(r[key]) for r in rows], [float(r[key]) for r in expected], rtol=1e-5
                )
    assert [p["epoch"] for p in summary["probe_history"]] == [1, 2, 3]
    # Epoch 1's probe accuracy comes from the killed run's row.
    assert summary["probe_history"][0]["probe_accuracy"] == float(
        _rows(run / "history.csv")[0]["probe_accuracy"]
    )
    assert summary["final_metrics"]["loss"] == pytest.approx(
        float(_rows(reference / "history.csv")[-1]["loss"]), rel=1e-5
    )


HOLD_LOCK = """
import sys, time
import keras_pid_ssl as kps
kps.training.RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_second_process_on_the_folder_is_refused_and_a_dead_ones_lock_taken_over(
    tiny_fashion_mnist, tmp_path
):
    run = tmp_path / "run"
    os.makedirs(run)
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline().strip() == "locked"
        with pytest.raises(
            RuntimeError, match=rf"{re.escape(str(run))} is in use by process {other.pid}"
        ):
            _pretrain(run, tiny_fashion_mnist)
        # Nothing was written into the other run's folder.
        assert sorted(os.listdir(run)) == [".lock"]
    finally:
        other.kill()  # SIGKILL: the kernel releases its lock; the file stays behind
        other.wait()
    lock = kps.training.RunLock(run)
    with pytest.warns(UserWarning, match=f"stale lock .* process {other.pid}"):
        lock.acquire()
    with open(run / ".lock") as f:
        assert json.load(f)["pid"] == os.getpid()
    # A process that comes back with a recorded PID (e.g. PID 1 in a container)
    # is not refused by its own old lock file.
    lock.release()
    with open(run / ".lock", "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
    kps.training.RunLock(run).acquire().release()
    assert not os.path.exists(run / ".lock")


def test_resume_with_another_configuration_is_refused_unless_allowed(
    finished_run, tiny_fashion_mnist, tmp_path
):
    reference, _, _ = finished_run
    run = tmp_path / "run"
    os.makedirs(run)
    for name in ("run_config.json", "summary.json", "history.csv"):
        with open(reference / name, "rb") as src, open(run / name, "wb") as dst:
            dst.write(src.read())
    with pytest.raises(
        ValueError, match=r"loss_options.w_syn: stored 1.0, now 0.5; seed: stored 0"
    ):
        _pretrain(run, tiny_fashion_mnist, seed=1, w_syn=0.5)
    with pytest.raises(ValueError, match=r"backbone: stored 'small_convnet', now 'resnet18'"):
        _pretrain(run, tiny_fashion_mnist, backbone="resnet18")
    # data_dir, verbose and export may change between calls.
    with pytest.warns(UserWarning, match="already finished"):
        _pretrain(run, tiny_fashion_mnist, verbose=2, export=True)
    # A finished run keeps its stored configuration, even when a change is allowed.
    before = _read(run / "run_config.json")
    with pytest.warns(UserWarning, match="already finished"):
        _pretrain(run, tiny_fashion_mnist, seed=1, allow_config_change=True)
    assert _read(run / "run_config.json") == before
    # A folder where nothing trained (an attempt that failed early) takes a new one.
    fresh = tmp_path / "fresh"
    os.makedirs(fresh)
    with open(fresh / "run_config.json", "wb") as f:
        f.write(before)
    kps.training.check_stored_config(str(fresh), {"seed": 5}, compare=False)
    with open(fresh / "run_config.json") as f:
        assert json.load(f) == {"seed": 5}
    with open(run / "run_config.json") as f:
        stored = json.load(f)
    with pytest.warns(UserWarning, match=r"changed configuration \(seed: stored 0, now 1\)"):
        kps.training.check_stored_config(str(run), {**stored, "seed": 1}, True)
    with open(run / "run_config.json") as f:
        assert json.load(f)["seed"] == 1


def test_history_trim_keeps_each_backed_up_epoch_once(tmp_path):
    path = str(tmp_path / "history.csv")
    with open(path, "w") as f:
        # Epoch 1 twice (an old append), epoch 2 not backed up, a cut last row.
        f.write("epoch,loss\n0,1.5\n1,1.25\n1,1.0\n2,0.75\n3,0.")
    rows = kps.training.trim_history(path, 2)
    assert rows == [{"epoch": "0", "loss": "1.5"}, {"epoch": "1", "loss": "1.0"}]
    assert _read(path) == b"epoch,loss\n0,1.5\n1,1.0\n"
    kps.training.trim_history(path, 5)  # nothing to drop: the file is left as it is
    assert _read(path) == b"epoch,loss\n0,1.5\n1,1.0\n"
    # Rows with other columns than the header (metrics changed between runs)
    # are refused, not dropped as if a kill had cut them.
    with open(path, "w") as f:
        f.write("epoch,loss\n0,1.5,0.3\n1,1.0,0.2\n")
    with pytest.raises(ValueError, match=r"row 2 has 3 fields where the header has 2"):
        kps.training.trim_history(path, 2)


def test_a_diverged_run_exports_nothing_and_says_so(tiny_fashion_mnist, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="Training diverged.*Nothing was exported"):
        _pretrain(run, tiny_fashion_mnist, optimizer="sgd", lr=1e30, warmup_epochs=0)
    assert not (run / "backbone.keras").exists() and not (run / "model.keras").exists()
    assert not (run / "summary.json").exists()
