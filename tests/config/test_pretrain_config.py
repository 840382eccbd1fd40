"""`kps.config.PretrainConfig`: one validated, serialisable description of a run."""

import dataclasses
import json

import pytest

from keras_pid_ssl import config as config_lib
from keras_pid_ssl.config import PretrainConfig


def test_scaled_epochs_rounds_half_up_and_leaves_the_last_epochs():
    expected = {1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 1, 14: 1, 15: 2, 100: 10, 1000: 100}
    assert {e: config_lib.scaled_epochs(e) for e in expected} == expected
    assert config_lib.scaled_epochs(1000, cap=10) == 10
    # Two stages of this length always leave the PID stage an epoch.
    assert all(2 * config_lib.scaled_epochs(e) < e for e in range(1, 200))


@pytest.mark.parametrize("method", ["pid", "barlow_twins", "vicreg"])
@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 1000])
def test_every_epoch_count_has_valid_defaults(method, epochs):
    run = PretrainConfig(method=method, epochs=epochs).resolved()
    assert run.warmup_epochs == min(10, config_lib.scaled_epochs(epochs)) <= epochs
    if method == "pid":
        assert run.pid_warmup_epochs + run.pid_transition_epochs < epochs


def test_resolved_fills_the_defaults_per_optimizer_dataset_and_target():
    run = PretrainConfig(dataset="fashion_mnist", optimizer="adamw", pid_target="ema").resolved()
    assert (run.lr, run.weight_decay) == (1e-3, 1e-4)
    assert run.augment == "grayscale" and run.target_momentum == 0.99
    run = PretrainConfig(lr=0.5, augment="cifar", target_momentum=0.9).resolved()
    assert (run.lr, run.augment, run.target_momentum) == (0.5, "cifar", 0.9)
    assert PretrainConfig().resolved().target_momentum == 0.0
    assert PretrainConfig(method="vicreg").resolved().target_momentum is None


def test_loss_arguments_join_loss_options_and_reach_the_loss_signature():
    config = PretrainConfig.from_options(method="pid", w_syn=0.5, estimator="full", epochs=5)
    assert config.loss_options == {"w_syn": 0.5, "estimator": "full"}
    assert config.epochs == 5
    from keras_pid_ssl.losses import PIDLoss

    loss = PIDLoss(**config.loss_options)
    assert loss.pid_coefficients["w_syn"] == 0.5 and loss.estimator == "full"
    # The defaults are the loss's own.
    assert config_lib.loss_parameters("pid")["delta"] == 1e-4
    assert config_lib.loss_parameters("vicreg")["invariance_weight"] == 25.0


def test_unknown_and_misplaced_options_are_named():
    with pytest.raises(TypeError, match=r"Unknown pretraining option\(s\) \['w_syn'\].*vicreg"):
        PretrainConfig.from_options(method="vicreg", w_syn=0.5)
    with pytest.raises(ValueError, match=r"`loss_options` \['lambda_offdiag'\]"):
        PretrainConfig(method="pid", loss_options={"lambda_offdiag": 0.1})
    with pytest.raises(
        ValueError, match=r"\['pid_target'\] are PID settings.*Received: pid_target='ema'"
    ):
        PretrainConfig(method="barlow_twins", pid_target="ema")
    with pytest.raises(ValueError, match="must be less than `epochs`"):
        PretrainConfig(epochs=4, pid_warmup_epochs=2, pid_transition_epochs=2)
    with pytest.raises(ValueError, match="`warmup_epochs` must be an int in \\[0, 3\\]"):
        PretrainConfig(epochs=3, warmup_epochs=4)
    with pytest.raises(ValueError, match="`optimizer` must be one of"):
        PretrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="needs no EMA target"):
        PretrainConfig(pid_target="pseudo_label", target_momentum=0.9)


def test_the_config_round_trips_through_json():
    config = PretrainConfig.from_options(
        dataset="fashion_mnist", projector_dims=[64, 32], w_syn=0.25, base_options={"scale": 2.0}
    )
    stored = json.loads(json.dumps(config.to_dict()))
    assert PretrainConfig.from_dict(stored) == config
    assert set(stored) == {f.name for f in dataclasses.fields(PretrainConfig)}
    assert PretrainConfig.from_dict(stored).projector_dims == (64, 32)


def test_every_field_has_help_and_a_kind():
    for field in dataclasses.fields(PretrainConfig):
        assert field.metadata.get("help"), field.name
        kind = config_lib.field_kind(field)
        default = getattr(PretrainConfig(), field.name)
        assert default is None or isinstance(default, kind), (field.name, kind, default)
