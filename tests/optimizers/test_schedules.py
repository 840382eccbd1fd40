import math

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps


def barlow_twins_learning_rate(step, peak, total_steps, warmup_steps, final_fraction):
    """`adjust_learning_rate` of the official Barlow Twins code, per step."""
    if step < warmup_steps:
        return peak * step / warmup_steps
    step = min(step, total_steps) - warmup_steps
    q = 0.5 * (1 + math.cos(math.pi * step / (total_steps - warmup_steps)))
    return peak * q + peak * final_fraction * (1 - q)


@pytest.mark.parametrize("warmup_steps", [0, 10])
def test_warmup_cosine_decay_matches_barlow_twins_schedule(warmup_steps):
    schedule = kps.optimizers.warmup_cosine_decay(
        0.8, total_steps=50, warmup_steps=warmup_steps, final_learning_rate_fraction=0.001
    )
    for step in [0, 1, 5, 9, 10, 11, 30, 49, 50, 60]:
        expected = barlow_twins_learning_rate(step, 0.8, 50, warmup_steps, 0.001)
        got = float(keras.ops.convert_to_numpy(schedule(step)))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_warmup_cosine_decay_serialises():
    schedule = kps.optimizers.warmup_cosine_decay(0.5, total_steps=20, warmup_steps=4)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    for step in (2, 4, 13):
        np.testing.assert_allclose(
            float(keras.ops.convert_to_numpy(restored(step))),
            float(keras.ops.convert_to_numpy(schedule(step))),
        )


def test_scale_learning_rate_is_linear_in_batch_size():
    assert kps.optimizers.scale_learning_rate(0.2, 256) == pytest.approx(0.2)
    assert kps.optimizers.scale_learning_rate(0.2, 2048) == pytest.approx(1.6)
    assert kps.optimizers.scale_learning_rate(0.3, 64, reference_batch_size=32) == pytest.approx(
        0.6
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(peak_learning_rate=0.0, total_steps=10), "peak_learning_rate"),
        (dict(peak_learning_rate=0.1, total_steps=10, warmup_steps=10), "total_steps"),
        (dict(peak_learning_rate=0.1, total_steps=10, warmup_steps=-1), "warmup_steps"),
        (
            dict(peak_learning_rate=0.1, total_steps=10, final_learning_rate_fraction=2.0),
            "final_learning_rate_fraction",
        ),
    ],
)
def test_warmup_cosine_decay_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kps.optimizers.warmup_cosine_decay(**kwargs)


def test_scale_learning_rate_rejects_invalid_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        kps.optimizers.scale_learning_rate(0.1, 0)
    with pytest.raises(ValueError, match="`reference_batch_size` must be an int >= 1"):
        kps.optimizers.scale_learning_rate(0.1, 256, reference_batch_size=25.6)
    with pytest.raises(ValueError, match="`base_learning_rate` must be a finite positive"):
        kps.optimizers.scale_learning_rate(-0.1, 256)
