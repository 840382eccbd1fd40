"""ProgressBar: a few key figures per line; every log still reaches the other callbacks."""

import csv
import re

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_dataset
from keras_pid_ssl.callbacks.progress import KEY_METRICS

MAX_LINE = 160
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _visible_lines(text):
    """What a terminal shows: split on \\r and \\n, without colours and backspaces."""
    return [ANSI.sub("", line).replace("\b", "") for line in re.split(r"[\r\n]", text)]


def _fit(callbacks, epochs=2):
    views = make_views(n=64, num_views=3)
    model = kps.PIDModel(tiny_encoder(), tiny_projector())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model.fit(view_dataset(*views), epochs=epochs, callbacks=callbacks, verbose=1)


def test_progress_lines_fit_in_160_characters_and_logs_stay_complete(tmp_path, capsys):
    # Keras's own bar on the same run: every logged value, lines far over 160.
    default = _fit([], epochs=1).history
    default_lines = _visible_lines(capsys.readouterr().out)
    assert len(default) > 12
    assert max(len(line) for line in default_lines) > MAX_LINE

    path = tmp_path / "history.csv"
    history = _fit([kps.callbacks.ProgressBar(), keras.callbacks.CSVLogger(str(path))]).history
    lines = _visible_lines(capsys.readouterr().out)
    assert max(len(line) for line in lines) <= MAX_LINE, max(lines, key=len)
    # Only this bar printed (Keras added none of its own): the key figures, in order.
    shown = [k for k in KEY_METRICS if k in history]
    assert shown[:3] == ["loss", "invariance", "synergy"]
    step_lines = [line for line in lines if " - loss:" in line]
    assert step_lines
    for line in step_lines:
        assert re.findall(r" - (\w+):", line) == shown
    assert "Epoch 2/2" in lines

    # Every value still reaches History and CSVLogger, unchanged.
    assert set(history) == set(default)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(history) <= set(rows[0])  # (CSVLogger adds empty val_ columns)
    for name, values in history.items():
        np.testing.assert_allclose([float(row[name]) for row in rows], values, rtol=1e-6)


def test_shown_keeps_the_named_logs_in_order_and_leaves_logs_alone():
    bar = kps.callbacks.ProgressBar(metrics=("val_loss", "loss", "absent"))
    logs = {"loss": 2.0, "mae": 1.0, "val_loss": 3.0}
    shown = bar.shown(logs)
    assert list(shown.items()) == [("val_loss", 3.0), ("loss", 2.0)]
    assert logs == {"loss": 2.0, "mae": 1.0, "val_loss": 3.0}
    assert bar.shown(None) == {}


@pytest.mark.parametrize("metrics", ["loss", ("loss", ""), ("loss", 3), 7])
def test_bad_metrics_are_refused_by_name(metrics):
    with pytest.raises(ValueError, match=r"`metrics` must be a sequence of metric names"):
        kps.callbacks.ProgressBar(metrics=metrics)


def test_evaluate_shows_only_the_named_figures(capsys):
    views = make_views(n=32, num_views=3)
    model = kps.PIDModel(tiny_encoder(), tiny_projector())
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    results = model.evaluate(
        view_dataset(*views),
        callbacks=[kps.callbacks.ProgressBar(metrics=("loss",))],
        verbose=1,
        return_dict=True,
    )
    lines = [line for line in _visible_lines(capsys.readouterr().out) if " - " in line]
    assert lines and all(re.findall(r" - (\w+):", line) == ["loss"] for line in lines)
    assert len(results) > 1
