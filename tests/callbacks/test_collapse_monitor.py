"""CollapseMonitor: its thresholds are checked when it is constructed."""

import numpy as np
import pytest

import keras_pid_ssl as kps


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(std_threshold=-0.1), "`std_threshold` must be a finite non-negative number"),
        (dict(rank_fraction=1.5), r"`rank_fraction` must be a number in \[0, 1\]"),
        (dict(every=0), "`every` must be an int >= 1. Received: every=0"),
        (dict(every=2.5), "`every` must be an int >= 1"),
    ],
)
def test_collapse_monitor_names_a_bad_argument(kwargs, match):
    images = np.zeros((4, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match=match):
        kps.callbacks.CollapseMonitor(images, **kwargs)


def test_collapse_monitor_needs_a_batch_of_images():
    with pytest.raises(ValueError, match=r"`images` must be a \(batch >= 2"):
        kps.callbacks.CollapseMonitor(np.zeros((1, 8, 8, 1), "float32"))
