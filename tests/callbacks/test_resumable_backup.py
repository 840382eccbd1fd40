"""ResumableBackup: atomic backups, resume, NaN guard, clear mismatch errors."""

import os
import re

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import view_batch


def _model(output_dim=8):
    model = kps.SSLModel(
        tiny_encoder(),
        kps.heads.Projector(hidden_dims=(16,), output_dim=output_dim),
        kps.losses.BarlowTwinsLoss(),
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


class Snapshot(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [np.array(w) for w in self.model.weights]


def test_resume_restores_weights_optimizer_and_epoch(tmp_path):
    v1, v2 = make_views(n=32)
    snapshot = Snapshot()
    model = _model()
    model.fit(
        view_batch(v1, v2),
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[kps.callbacks.ResumableBackup(tmp_path), snapshot],
    )
    iterations = int(np.array(model.optimizer.iterations))
    resumed = _model()
    backup = kps.callbacks.ResumableBackup(tmp_path)
    history = resumed.fit(
        view_batch(v1, v2), batch_size=16, epochs=3, verbose=0, callbacks=[backup]
    )
    assert backup.resumed_from_epoch == 2 and history.epoch == [2]
    assert int(np.array(resumed.optimizer.iterations)) == iterations + 2


def test_kill_while_writing_keeps_the_previous_backup_loadable(tmp_path):
    v1, v2 = make_views(n=32)
    snapshot = Snapshot()
    model = _model()
    backup = kps.callbacks.ResumableBackup(tmp_path)
    original_save = model.save_weights

    def dying_save(path, *args, **kwargs):
        if snapshot.weights and max(snapshot.weights) >= 1 and backup.latest() is not None:
            with open(path, "wb") as f:
                f.write(b"partial h5 garbage")  # the process dies mid-write
            raise KeyboardInterrupt("killed while writing")
        return original_save(path, *args, **kwargs)

    model.save_weights = dying_save
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            view_batch(v1, v2), batch_size=16, epochs=3, verbose=0, callbacks=[snapshot, backup]
        )
    folder, state = backup.latest()
    assert state["epoch"] == 1
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    restored = _model()
    restored.fit(
        view_batch(v1, v2),
        batch_size=16,
        epochs=1,
        verbose=0,
        callbacks=[kps.callbacks.ResumableBackup(tmp_path)],
    )
    # Nothing left to train (epoch 1 of 1 done): the weights are epoch 1's.
    for saved, current in zip(snapshot.weights[1], restored.weights, strict=True):
        np.testing.assert_array_equal(saved, np.array(current))


class PoisonAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.projector.output_dense.kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_nan_epoch_is_not_backed_up_and_training_stops(tmp_path):
    v1, v2 = make_views(n=32)
    model = _model()
    backup = kps.callbacks.ResumableBackup(tmp_path)
    with pytest.warns(UserWarning, match="backup of epoch 1 is kept"):
        history = model.fit(
            view_batch(v1, v2),
            batch_size=16,
            epochs=4,
            verbose=0,
            callbacks=[PoisonAt(1), keras.callbacks.TerminateOnNaN(), backup],
        )
    assert len(history.epoch) == 2
    folder, state = backup.latest()
    assert state["epoch"] == 1
    restored = _model()
    restored.load_weights(os.path.join(folder, "model.weights.h5"))
    assert all(np.all(np.isfinite(np.array(w))) for w in restored.weights)


def test_backup_of_another_architecture_gives_a_clear_error(tmp_path):
    v1, v2 = make_views(n=32)
    _model(output_dim=8).fit(
        view_batch(v1, v2),
        batch_size=16,
        epochs=1,
        verbose=0,
        callbacks=[kps.callbacks.ResumableBackup(tmp_path)],
    )
    with pytest.raises(ValueError, match="another architecture"):
        _model(output_dim=12).fit(
            view_batch(v1, v2),
            batch_size=16,
            epochs=2,
            verbose=0,
            callbacks=[kps.callbacks.ResumableBackup(tmp_path)],
        )


def test_collapse_monitor_flags_a_collapsed_model():
    v1, v2 = make_views(n=32)
    model = _model()
    monitor = kps.callbacks.CollapseMonitor(v1)
    model.fit(view_batch(v1, v2), batch_size=16, epochs=1, verbose=0, callbacks=[monitor])
    kernel = model.projector.output_dense.kernel
    kernel.assign(np.zeros(kernel.shape, "float32"))
    monitor.set_model(model)
    logs = {}
    with pytest.warns(UserWarning, match="collapsing"):
        monitor.on_epoch_end(1, logs)
    assert logs["embedding_std"] < 0.1


def test_collapse_statistics_match_closed_forms():
    rng = np.random.default_rng(0)
    isotropic = rng.normal(size=(4000, 8))
    stats = kps.callbacks.collapse_monitor.collapse_statistics(isotropic)
    assert stats["effective_rank"] == pytest.approx(8, rel=0.02)
    assert stats["embedding_std"] == pytest.approx(1.0, rel=0.05)
    rank_one = np.outer(rng.normal(size=4000), rng.normal(size=8))
    assert kps.callbacks.collapse_monitor.collapse_statistics(rank_one)[
        "effective_rank"
    ] == pytest.approx(1.0, abs=1e-3)


def _two_backups(tmp_path):
    v1, v2 = make_views(n=32)
    snapshot = Snapshot()
    _model().fit(
        view_batch(v1, v2),
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[snapshot, kps.callbacks.ResumableBackup(tmp_path)],
    )
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("epoch-")) == [
        "epoch-000001",
        "epoch-000002",
    ]
    return v1, v2, snapshot


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _garbage(path):
    with open(path, "w") as f:
        f.write("{not json")


def _claims_epoch_99(path):
    with open(path, "w") as f:
        f.write('{"epoch": 99}')


@pytest.mark.parametrize(
    "corrupt, file, reason",
    [
        (_truncate, "model.weights.h5", "not a readable weights file"),
        (_garbage, "model.weights.h5", "not a readable weights file"),
        (_garbage, "state.json", "unreadable"),
        (_claims_epoch_99, "state.json", "does not hold the epoch of its folder"),
    ],
)
def test_corrupt_latest_backup_falls_back_to_the_previous_one(tmp_path, corrupt, file, reason):
    v1, v2, snapshot = _two_backups(tmp_path)
    bad = os.path.join(tmp_path, "epoch-000002", file)
    corrupt(bad)
    model = _model()
    backup = kps.callbacks.ResumableBackup(tmp_path)
    with pytest.warns(
        UserWarning, match=rf"{re.escape(bad)} (is|does) .*Falling back to the intact"
    ):
        history = model.fit(
            view_batch(v1, v2), batch_size=16, epochs=2, verbose=0, callbacks=[backup]
        )
    # Resumed from epoch 1's backup: epoch index 1 runs again.
    assert backup.resumed_from_epoch == 1 and history.epoch == [1]
    assert backup.latest()[1]["epoch"] == 2  # a fresh, intact epoch-2 backup


def test_backups_all_corrupt_raise_naming_the_folder(tmp_path):
    v1, v2, _ = _two_backups(tmp_path)
    for name in ("epoch-000001", "epoch-000002"):
        _truncate(os.path.join(tmp_path, name, "model.weights.h5"))
    with pytest.raises(ValueError, match=rf"No intact backup in {re.escape(str(tmp_path))}"):
        _model().fit(
            view_batch(v1, v2),
            batch_size=16,
            epochs=3,
            verbose=0,
            callbacks=[kps.callbacks.ResumableBackup(tmp_path)],
        )


def test_resumed_fit_weights_equal_the_fallback_backup(tmp_path):
    v1, v2, snapshot = _two_backups(tmp_path)
    _garbage(os.path.join(tmp_path, "latest"))  # the pointer itself is garbage
    restored = _model()
    with pytest.warns(UserWarning, match="not a backup folder"):
        restored.fit(
            view_batch(v1, v2),
            batch_size=16,
            epochs=2,
            verbose=0,
            callbacks=[kps.callbacks.ResumableBackup(tmp_path)],
        )
    # Nothing left to train (2 of 2 done): the weights are epoch 2's.
    for saved, current in zip(snapshot.weights[2], restored.weights, strict=True):
        np.testing.assert_array_equal(saved, np.array(current))
