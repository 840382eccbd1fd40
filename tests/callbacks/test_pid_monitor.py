"""PIDMonitor: full-estimator atoms of backbone features, CSV and PNG."""

import csv
import os

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_dataset
from keras_pid_ssl.information import ATOM_NAMES
from keras_pid_ssl.information import gaussian_pid


def test_monitor_logs_atoms_writes_csv_and_png(tmp_path):
    views = make_views(n=64, num_views=3)
    model = kps.PIDModel(tiny_encoder(), tiny_projector(), track_gradient_ratio=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    monitor = kps.callbacks.PIDMonitor(views, output_dir=str(tmp_path), projection_dim=4)
    dataset = view_dataset(*views)
    history = model.fit(dataset, epochs=2, callbacks=[monitor], verbose=0).history
    for name in ATOM_NAMES:
        assert len(history[f"monitor_{name}"]) == 2
    with open(os.path.join(tmp_path, "pid_monitor.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert os.path.getsize(os.path.join(tmp_path, "pid_monitor.png")) > 1000
    # The logged atoms are the full estimator on the projected features.
    features = [monitor._project(np.asarray(model.encoder.predict(v, verbose=0))) for v in views]
    expected = gaussian_pid(*features, estimator="full", ridge=monitor.ridge)
    for name in ATOM_NAMES:
        np.testing.assert_allclose(
            float(rows[-1][name]), float(expected[name]), rtol=1e-4, atol=1e-5
        )
    row = {k: float(v) for k, v in rows[-1].items()}
    np.testing.assert_allclose(
        row["redundancy"] + row["unique1"] + row["unique2"] + row["synergy"], row["i12"], atol=1e-5
    )


def test_monitor_rejects_bad_views():
    v1, v2 = make_views(n=16)
    with pytest.raises(ValueError, match="target_view"):
        kps.callbacks.PIDMonitor((v1, v2))
    with pytest.raises(ValueError, match="same shape"):
        kps.callbacks.PIDMonitor((v1, v2, v2[:, :4]))
    with pytest.raises(ValueError, match="at least 8"):
        kps.callbacks.PIDMonitor((v1[:4], v2[:4], v2[:4]))


def test_resumed_monitor_keeps_the_earlier_epochs_once(tmp_path):
    views = make_views(n=64, num_views=3)
    model = kps.PIDModel(tiny_encoder(), tiny_projector(), track_gradient_ratio=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    dataset = view_dataset(*views)
    first = kps.callbacks.PIDMonitor(views, output_dir=str(tmp_path), projection_dim=4)
    model.fit(dataset, epochs=2, callbacks=[first], verbose=0)
    path = os.path.join(tmp_path, "pid_monitor.csv")
    with open(path) as f:
        before = list(csv.DictReader(f))
    # A new process resumes after epoch 1 (epoch 2's backup was lost): a new monitor.
    resumed = kps.callbacks.PIDMonitor(views, output_dir=str(tmp_path), projection_dim=4)
    model.fit(dataset, initial_epoch=1, epochs=3, callbacks=[resumed], verbose=0)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows[0] == before[0]  # kept from the file, not recomputed
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    # The last row holds the atoms of the final weights.
    features = [resumed._project(np.asarray(model.encoder.predict(v, verbose=0))) for v in views]
    expected = gaussian_pid(*features, estimator="full", ridge=resumed.ridge)
    np.testing.assert_allclose(float(rows[2]["synergy"]), float(expected["synergy"]), rtol=1e-4)


def test_monitor_draws_its_history_in_the_two_panel_plot(tmp_path):
    pytest.importorskip("matplotlib")
    views = make_views(n=64, num_views=3)
    model = kps.PIDModel(tiny_encoder(), tiny_projector(), track_gradient_ratio=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    monitor = kps.callbacks.PIDMonitor(views, output_dir=str(tmp_path), projection_dim=4)
    model.fit(view_dataset(*views), epochs=2, callbacks=[monitor], verbose=0)
    reference = tmp_path / "reference.png"
    figure = kps.plots.plot_pid_monitor(monitor.history, str(reference))
    assert len(figure.axes) == 2
    # The same figure, drawn from the same rows: the same bytes.
    assert (tmp_path / "pid_monitor.png").read_bytes() == reference.read_bytes()
