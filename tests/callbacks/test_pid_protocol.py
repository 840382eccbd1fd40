"""PIDProtocol: the schedule reaches the compiled step and survives save/load."""

import math
import os

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import make_views
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch
from conftest import view_dataset


def alpha(progress):
    return 0.5 * (1 - math.cos(math.pi * progress))


def expected_w_syn(epoch, warmup=1, transition=2, w_syn=1.0):
    if epoch < warmup:
        return 0.0
    if epoch < warmup + transition:
        return w_syn * alpha((epoch - warmup + 0.5) / transition)
    return w_syn


def _model():
    loss = kps.losses.PIDLoss(invariance_weight=0.5, w_joint=0.2, w_red=0.0, w_syn=1.0)
    model = kps.PIDModel(tiny_encoder(), tiny_projector(), loss=loss, track_gradient_ratio=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def _dataset():
    return view_dataset(*make_views(n=32, num_views=3))


def test_schedule_values_follow_warmup_transition_and_pid_stage():
    protocol = kps.callbacks.PIDProtocol(epochs=10, warmup_epochs=2, transition_epochs=4)
    loss = kps.losses.PIDLoss(invariance_weight=0.5, w_syn=2.0)
    assert [protocol.stage(e) for e in (0, 1, 2, 5, 6, 9)] == [
        "warmup",
        "warmup",
        "transition",
        "transition",
        "pid",
        "pid",
    ]
    assert protocol.coefficients_at(0, loss) == loss.base_coefficients
    mid = protocol.coefficients_at(3, loss)
    a = alpha(1.5 / 4)
    assert mid["w_syn"] == pytest.approx(2.0 * a)
    assert mid["invariance_weight"] == pytest.approx(1.0 - 0.5 * a)
    assert protocol.coefficients_at(9, loss) == loss.pid_coefficients


def test_default_stages_are_ten_percent_of_the_epochs():
    protocol = kps.callbacks.PIDProtocol(epochs=1000)
    assert (protocol.warmup_epochs, protocol.transition_epochs) == (100, 100)


def test_compiled_step_sees_the_scheduled_coefficients():
    model = _model()
    protocol = kps.callbacks.PIDProtocol(epochs=5, warmup_epochs=1, transition_epochs=2)
    history = model.fit(_dataset(), epochs=5, callbacks=[protocol], verbose=0).history
    # The coefficients are reported from inside the step as metrics.
    expected = [expected_w_syn(e) for e in range(5)]
    np.testing.assert_allclose(history["w_syn"], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        history["w_joint"], [0.2 * x for x in expected], rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        history["invariance_weight"], [1 - 0.5 * x for x in expected], rtol=1e-6
    )


def test_saved_model_resumes_the_schedule_where_it_stopped(tmp_path):
    model = _model()
    protocol = kps.callbacks.PIDProtocol(epochs=5, warmup_epochs=1, transition_epochs=2)
    model.fit(_dataset(), epochs=2, callbacks=[protocol], verbose=0)
    path = os.path.join(tmp_path, "mid_schedule.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    # The coefficients of the last epoch run (epoch index 1) are saved.
    assert float(np.array(restored.ssl_loss.coefficients["w_syn"])) == pytest.approx(
        expected_w_syn(1)
    )
    protocol = kps.callbacks.PIDProtocol(epochs=5, warmup_epochs=1, transition_epochs=2)
    history = restored.fit(
        _dataset(), initial_epoch=2, epochs=5, callbacks=[protocol], verbose=0
    ).history
    np.testing.assert_allclose(history["w_syn"], [expected_w_syn(e) for e in (2, 3, 4)], rtol=1e-6)


def test_protocol_rejects_models_without_a_pid_loss():
    model = kps.SSLModel(tiny_encoder(), tiny_projector(), kps.losses.BarlowTwinsLoss())
    model.compile(optimizer="adam")
    v1, v2 = make_views(n=16)
    with pytest.raises(ValueError, match="PIDLoss"):
        model.fit(
            view_batch(v1, v2), epochs=1, verbose=0, callbacks=[kps.callbacks.PIDProtocol(epochs=2)]
        )


def test_protocol_rejects_bad_arguments():
    with pytest.raises(ValueError, match="epochs"):
        kps.callbacks.PIDProtocol(epochs=0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        kps.callbacks.PIDProtocol(epochs=10, warmup_epochs=-1)
    with pytest.raises(ValueError, match="pid_coefficients"):
        kps.callbacks.PIDProtocol(epochs=10, pid_coefficients={"alpha": 1.0})


def test_protocol_that_never_reaches_the_pid_stage_is_refused():
    with pytest.raises(
        ValueError, match=r"`warmup_epochs` \+ `transition_epochs` must be less than `epochs`"
    ) as error:
        kps.callbacks.PIDProtocol(epochs=10, warmup_epochs=50)
    assert "warmup_epochs=50, transition_epochs=1, epochs=10" in str(error.value)
    with pytest.raises(ValueError, match="transition_epochs=3, epochs=5"):
        kps.callbacks.PIDProtocol(epochs=5, warmup_epochs=2, transition_epochs=3)
    # One epoch left for the PID stage is enough: the last epoch runs it.
    protocol = kps.callbacks.PIDProtocol(epochs=6, warmup_epochs=2, transition_epochs=3)
    assert [protocol.stage(e) for e in range(6)] == ["warmup"] * 2 + ["transition"] * 3 + ["pid"]
    assert kps.callbacks.PIDProtocol(epochs=1).stage(0) == "pid"  # defaults: round(0.1) = 0


def test_protocol_epoch_counts_must_be_ints():
    with pytest.raises(ValueError, match="`transition_epochs` must be an int >= 0"):
        kps.callbacks.PIDProtocol(epochs=10, transition_epochs=1.5)
    with pytest.raises(ValueError, match="`epochs` must be an int >= 1. Received: epochs=True"):
        kps.callbacks.PIDProtocol(epochs=True)
