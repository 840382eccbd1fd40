"""The run's plots: the online probe's accuracy and the PID monitor's atoms.

Each `plot_*` function writes a PNG (atomically: a reader never sees half a
file) and returns the `matplotlib.figure.Figure` it drew, so that a caller or
a test can read its axes. The figures are built with matplotlib's object API
(`matplotlib.figure.Figure`), not `pyplot`: nothing here changes the user's
matplotlib backend or keeps figures alive in pyplot's global state.

Epochs are counted in whole numbers, so every epoch axis has integer ticks
(`MaxNLocator(integer=True)`), also for a single epoch.
"""

import os

# The PID monitor's columns (see `kps.information.gaussian_pid`), drawn in two
# panels: the informations I(T; F1), I(T; F2), I(T; F1, F2), then the four
# atoms they decompose into.
INFORMATION_NAMES = ("i1", "i2", "i12")
ATOM_PANEL_NAMES = ("redundancy", "unique1", "unique2", "synergy")

# Lines of one panel can coincide: under the minimum-mutual-information PID,
# redundancy = min(i1, i2) and unique1 or unique2 is exactly 0. Each line of a
# panel therefore has its own line style and marker, and lines drawn earlier
# are wider with larger hollow markers, so a later line on top of an earlier
# one leaves the earlier one visible around it.
LINE_STYLES = (
    dict(linestyle="-", marker="o", linewidth=3.0, markersize=10, markerfacecolor="none"),
    dict(linestyle="--", marker="s", linewidth=2.2, markersize=7, markerfacecolor="none"),
    dict(linestyle="-.", marker="^", linewidth=1.5, markersize=5),
    dict(linestyle=":", marker="x", linewidth=1.2, markersize=6, markeredgewidth=1.5),
)


def probe_curve_figure(history):
    """A figure of the online probe's top-1 accuracy by epoch, or None.

    Args:
        history: rows (dicts) with an integer `"epoch"`; the rows holding a
            `"probe_accuracy"` are drawn (`OnlineLinearProbe.history`).

    Returns:
        A `matplotlib.figure.Figure`, or None when no row has an accuracy.
    """
    rows = [row for row in history if "probe_accuracy" in row]
    if not rows:
        return None
    figure, axes = _figure(1, figsize=(5, 3.5))
    axes[0].plot(
        [row["epoch"] for row in rows],
        [row["probe_accuracy"] for row in rows],
        marker="o",
        label="probe_accuracy",
    )
    axes[0].set_ylabel("online linear probe top-1")
    axes[0].set_title("Online linear probe on held-out images")
    figure.tight_layout()
    return figure


def plot_probe_curve(history, path):
    """Writes `probe_curve_figure(history)` to the PNG `path`.

    Returns:
        The figure, or None (and no file) when no row has an accuracy.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "probe_curve.png")
    >>> history = [{"epoch": 1, "probe_accuracy": 0.5}, {"epoch": 2, "probe_accuracy": 0.6}]
    >>> figure = kps.plots.plot_probe_curve(history, path)
    >>> os.path.exists(path), [line.get_label() for line in figure.axes[0].get_lines()]
    (True, ['probe_accuracy'])
    """
    figure = probe_curve_figure(history)
    if figure is not None:
        _save(figure, path)
    return figure


def pid_monitor_figure(history):
    """A two-panel figure of the PID monitor's rows by epoch.

    The left panel draws the informations (`i1`, `i2`, `i12`), the right
    one the atoms (`redundancy`, `unique1`, `unique2`, `synergy`), in nats.

    Args:
        history: rows (dicts) with an integer `"epoch"` and the seven columns
            above (`PIDMonitor.history`).

    Returns:
        A `matplotlib.figure.Figure` with two axes.
    """
    figure, axes = _figure(2, figsize=(10, 4))
    epochs = [row["epoch"] for row in history]
    panels = (
        (INFORMATION_NAMES, "informations I(T; F1), I(T; F2), I(T; F1, F2)"),
        (ATOM_PANEL_NAMES, "PID atoms of I(T; F1, F2)"),
    )
    for ax, (names, title) in zip(axes, panels, strict=True):
        for name, style in zip(names, LINE_STYLES, strict=False):
            ax.plot(epochs, [row[name] for row in history], label=name, **style)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("nats (full Gaussian estimate)")
        ax.legend(fontsize=8)
    figure.suptitle("PID of backbone features on a fixed batch", fontsize=11)
    figure.tight_layout()
    return figure


def plot_pid_monitor(history, path):
    """Writes `pid_monitor_figure(history)` to the PNG `path`; returns the figure.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pid_monitor.png")
    >>> row = dict(i1=1.0, i2=1.0, i12=2.5, redundancy=1.0, unique1=0.0,
    ...            unique2=0.0, synergy=1.5)
    >>> figure = kps.plots.plot_pid_monitor([dict(epoch=1, **row)], path)
    >>> [[line.get_label() for line in ax.get_lines()] for ax in figure.axes]
    [['i1', 'i2', 'i12'], ['redundancy', 'unique1', 'unique2', 'synergy']]
    """
    figure = pid_monitor_figure(history)
    _save(figure, path)
    return figure


def _figure(panels, figsize):
    """A figure of `panels` side-by-side axes whose x axis is the epoch."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=figsize)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    for ax in axes:
        ax.set_xlabel("epoch")
        # min_n_ticks=1: a one-epoch run gets the tick "1", where the default
        # (2) would fall back to fractional ticks around it.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
    return figure, axes


def _save(figure, path):
    """Saves `figure` as the PNG `path`, replacing it atomically."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=100, format="png")
    os.replace(temporary, path)
