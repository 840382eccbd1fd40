"""kps.plots: integer epoch ticks, two PID panels, lines that never hide each other."""

import os

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from keras_pid_ssl import plots  # noqa: E402
from keras_pid_ssl.information import ATOM_NAMES  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _pid_rows(epochs):
    """Rows where lines coincide, as the MMI PID makes them: i1 == i2 == redundancy,
    unique1 == unique2 == 0."""
    rows = []
    for epoch in epochs:
        i1 = 0.5 + 0.1 * epoch
        rows.append(
            dict(
                epoch=epoch,
                i1=i1,
                i2=i1,
                i12=3 * i1,
                redundancy=i1,
                unique1=0.0,
                unique2=0.0,
                synergy=2 * i1,
            )
        )
    return rows


def _visible_ticks(ax):
    low, high = ax.get_xlim()
    return [tick for tick in ax.get_xticks() if low <= tick <= high]


def _assert_integer_epoch_ticks(ax):
    ticks = _visible_ticks(ax)
    assert ticks, "no visible epoch tick"
    np.testing.assert_array_equal(ticks, np.round(ticks))


def _assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    assert not os.path.exists(str(path) + ".tmp.png")


def test_panels_cover_every_atom_once():
    assert sorted(plots.INFORMATION_NAMES + plots.ATOM_PANEL_NAMES) == sorted(ATOM_NAMES)


@pytest.mark.parametrize("epochs", [[1], [1, 2, 3], list(range(1, 8))])
def test_pid_monitor_plot_has_two_panels_with_integer_ticks(tmp_path, epochs):
    rows = _pid_rows(epochs)
    path = tmp_path / "pid_monitor.png"
    figure = plots.plot_pid_monitor(rows, str(path))
    _assert_png(path)
    informations, atoms = figure.axes
    assert [line.get_label() for line in informations.get_lines()] == ["i1", "i2", "i12"]
    assert [line.get_label() for line in atoms.get_lines()] == [
        "redundancy",
        "unique1",
        "unique2",
        "synergy",
    ]
    for ax in figure.axes:
        _assert_integer_epoch_ticks(ax)
        for line in ax.get_lines():
            np.testing.assert_array_equal(line.get_xdata(), epochs)
            expected = [row[line.get_label()] for row in rows]
            np.testing.assert_allclose(line.get_ydata(), expected)


def test_coinciding_pid_lines_stay_distinguishable(tmp_path):
    figure = plots.pid_monitor_figure(_pid_rows([1, 2, 3]))
    for ax in figure.axes:
        lines = ax.get_lines()
        styles = [(line.get_linestyle(), line.get_marker()) for line in lines]
        assert len({s[0] for s in styles}) == len(lines), styles
        assert len({s[1] for s in styles}) == len(lines), styles
        # A line drawn later is thinner, with a smaller marker or a hollow one
        # drawn first: the earlier line shows around it where they coincide.
        widths = [line.get_linewidth() for line in lines]
        assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)
        assert ax.get_legend() is not None
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            line.get_label() for line in lines
        ]


def test_probe_curve_has_integer_epoch_ticks(tmp_path):
    history = [
        {"epoch": 1, "probe_accuracy": 0.40},
        {"epoch": 2},  # an epoch without a probe row is skipped
        {"epoch": 3, "probe_accuracy": 0.55},
    ]
    path = tmp_path / "probe_curve.png"
    figure = plots.plot_probe_curve(history, str(path))
    _assert_png(path)
    (ax,) = figure.axes
    _assert_integer_epoch_ticks(ax)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [1, 3])
    np.testing.assert_allclose(line.get_ydata(), [0.40, 0.55])


def test_probe_curve_of_one_epoch_has_integer_ticks(tmp_path):
    figure = plots.plot_probe_curve([{"epoch": 1, "probe_accuracy": 0.5}], str(tmp_path / "p.png"))
    _assert_integer_epoch_ticks(figure.axes[0])


def test_probe_curve_without_accuracy_writes_nothing(tmp_path):
    path = tmp_path / "probe_curve.png"
    assert plots.plot_probe_curve([{"epoch": 1}], str(path)) is None
    assert not path.exists()


def test_plots_leave_pyplot_and_the_backend_alone(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    plots.plot_pid_monitor(_pid_rows([1, 2]), str(tmp_path / "a.png"))
    plots.plot_probe_curve([{"epoch": 1, "probe_accuracy": 0.5}], str(tmp_path / "b.png"))
    assert matplotlib.get_backend() == backend
    pyplot = __import__("sys").modules.get("matplotlib.pyplot")
    if pyplot is not None:  # Keras may have imported it; no figure of ours is left open
        assert pyplot.get_fignums() == []
