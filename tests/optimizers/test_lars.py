import math

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps


def reference_lars_step(weights, grads, momenta, lr, *, momentum, weight_decay, eta, exclude):
    """One step of the official Barlow Twins LARS (main.py), in NumPy."""
    new_weights, new_momenta = [], []
    for w, g, mu in zip(weights, grads, momenta, strict=True):
        w, g, mu = (np.asarray(a, np.float64) for a in (w, g, mu))
        exempt = exclude and w.ndim == 1
        dp = g if exempt else g + weight_decay * w
        if not exempt:
            w_norm, d_norm = np.linalg.norm(w), np.linalg.norm(dp)
            q = eta * w_norm / d_norm if (w_norm > 0 and d_norm > 0) else 1.0
            dp = dp * q
        mu = momentum * mu + dp
        new_momenta.append(mu)
        new_weights.append(w - lr * mu)
    return new_weights, new_momenta


def make_variables():
    rng = np.random.default_rng(0)
    values = [
        rng.normal(size=(5, 3)),  # a kernel
        rng.normal(size=(3,)),  # a bias / norm parameter
        np.zeros((2, 2)),  # a zero kernel: trust ratio falls back to 1
        rng.normal(size=(2, 3, 3, 4)),  # a conv kernel
    ]
    return [keras.Variable(v.astype("float32")) for v in values], values


@pytest.mark.parametrize("exclude", [True, False])
def test_lars_matches_barlow_twins_reference_over_several_steps(exclude):
    hyper = dict(momentum=0.9, weight_decay=0.05, eta=0.02)
    variables, weights = make_variables()
    optimizer = kps.optimizers.LARS(learning_rate=0.3, exclude_bias_and_norm=exclude, **hyper)
    rng = np.random.default_rng(1)
    momenta = [np.zeros_like(w) for w in weights]
    for _ in range(4):
        grads = [rng.normal(size=w.shape) for w in weights]
        optimizer.apply(
            [keras.ops.convert_to_tensor(g.astype("float32")) for g in grads], variables
        )
        weights, momenta = reference_lars_step(
            weights, grads, momenta, 0.3, exclude=exclude, **hyper
        )
    for variable, expected in zip(variables, weights, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variable), expected, rtol=1e-4, atol=1e-6
        )


def test_lars_follows_a_schedule_and_scales_bias_learning_rate():
    hyper = dict(momentum=0.5, weight_decay=0.0, eta=0.1)
    schedule = kps.optimizers.warmup_cosine_decay(1.0, total_steps=6, warmup_steps=2)
    variables, weights = make_variables()
    optimizer = kps.optimizers.LARS(
        learning_rate=schedule, bias_and_norm_learning_rate_scale=0.1, **hyper
    )
    rng = np.random.default_rng(2)
    momenta = [np.zeros_like(w) for w in weights]
    for step in range(5):
        grads = [rng.normal(size=w.shape) for w in weights]
        optimizer.apply(
            [keras.ops.convert_to_tensor(g.astype("float32")) for g in grads], variables
        )
        lr = step / 2 if step < 2 else 0.5 * (1 + math.cos(math.pi * (step - 2) / 4))
        new_weights, new_momenta = reference_lars_step(
            weights, grads, momenta, lr, exclude=True, **hyper
        )
        # 1-D variables step with a tenth of the rate.
        new_weights[1] = weights[1] - 0.1 * lr * new_momenta[1]
        weights, momenta = new_weights, new_momenta
    for variable, expected in zip(variables, weights, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variable), expected, rtol=1e-4, atol=1e-6
        )


def test_exclude_from_weight_decay_skips_decay_but_keeps_trust_ratio():
    hyper = dict(momentum=0.9, eta=0.02)
    variable = keras.Variable(np.ones((3, 3), "float32"), name="special_kernel")
    optimizer = kps.optimizers.LARS(learning_rate=0.5, weight_decay=0.1, **hyper)
    optimizer.exclude_from_weight_decay(var_names=["special_kernel"])
    grad = np.full((3, 3), 2.0)
    optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32"))], [variable])
    (expected,), _ = reference_lars_step(
        [np.ones((3, 3))],
        [grad],
        [np.zeros((3, 3))],
        0.5,
        weight_decay=0.0,
        exclude=True,
        **hyper,
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), expected, rtol=1e-5)


def test_lars_trains_a_model_with_fit_and_round_trips_its_config():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    # Biases and batch-norm parameters take plain momentum SGD: a smaller
    # rate for them, as Barlow Twins does.
    optimizer = kps.optimizers.LARS(
        learning_rate=1.0, eta=0.01, weight_decay=1e-6, bias_and_norm_learning_rate_scale=0.02
    )
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]))[:, None].astype("float32")
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.25 * losses[0], losses

    config = optimizer.get_config()
    clone = kps.optimizers.LARS.from_config(config)
    for key in (
        "momentum",
        "weight_decay",
        "eta",
        "exclude_bias_and_norm",
        "bias_and_norm_learning_rate_scale",
    ):
        assert getattr(clone, key) == getattr(optimizer, key)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, kps.optimizers.LARS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(momentum=1.0), r"`momentum`.*1\.0"),
        (dict(weight_decay=-1.0), r"`weight_decay`.*-1\.0"),
        (dict(eta=0.0), r"`eta`.*0\.0"),
        (
            dict(bias_and_norm_learning_rate_scale=-0.1),
            r"`bias_and_norm_learning_rate_scale`.*-0\.1",
        ),
        # A negative rate was accepted and would ascend the loss.
        (dict(learning_rate=-1), r"`learning_rate` must be a finite positive number.*=-1"),
        (dict(learning_rate=0.0), "`learning_rate`"),
        (dict(learning_rate=float("nan")), "`learning_rate`"),
        (dict(momentum="0.9"), r"`momentum` must be in \[0, 1\)"),
    ],
)
def test_lars_rejects_invalid_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kps.optimizers.LARS(**kwargs)


def test_lars_takes_a_schedule_or_a_positive_number_as_learning_rate():
    schedule = kps.optimizers.warmup_cosine_decay(0.4, total_steps=100)
    optimizer = kps.optimizers.LARS(learning_rate=schedule)
    # The schedule's value at step 0 (no warm-up: the peak).
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.4)
    assert optimizer.get_config()["learning_rate"]["class_name"] == "CosineDecay"
    optimizer = kps.optimizers.LARS(learning_rate=np.float32(0.25))
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 0.25


def test_lars_and_its_schedule_survive_a_keras_checkpoint(tmp_path):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8)(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.BatchNormalization()(x))
    model = keras.Model(inputs, outputs)
    schedule = kps.optimizers.warmup_cosine_decay(1.0, total_steps=100, warmup_steps=10)
    model.compile(
        optimizer=kps.optimizers.LARS(
            schedule, weight_decay=1e-4, bias_and_norm_learning_rate_scale=0.02
        ),
        loss="mse",
    )
    rng = np.random.default_rng(0)
    model.fit(rng.random((32, 4)), rng.random((32, 1)), batch_size=16, epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(restored.optimizer, kps.optimizers.LARS)
    assert restored.optimizer.bias_and_norm_learning_rate_scale == 0.02
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 4
    for saved, loaded in zip(model.optimizer.variables, restored.optimizer.variables, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(loaded)
        )


# Tests added for the mutation run (docs/testing.md).


def _steps(optimizer, grads_seed=3, steps=3):
    """Applies `steps` random gradients to make_variables(); returns variables and grads."""
    variables, weights = make_variables()
    rng = np.random.default_rng(grads_seed)
    history = []
    for _ in range(steps):
        grads = [rng.normal(size=w.shape) for w in weights]
        history.append(grads)
        optimizer.apply(
            [keras.ops.convert_to_tensor(g.astype("float32")) for g in grads], variables
        )
    return variables, weights, history


def _to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def _reference(weights, history, lr, **hyper):
    momenta = [np.zeros_like(w) for w in weights]
    for grads in history:
        weights, momenta = reference_lars_step(weights, grads, momenta, lr, **hyper)
    return weights


@pytest.mark.parametrize("weight_decay", [0.0, None])
def test_lars_defaults_are_the_documented_ones(weight_decay):
    """Kills a changed default rate (0.2), momentum (0.9), decay (0, also for
    None) or eta (0.001), and another default name than "lars"."""
    optimizer = kps.optimizers.LARS(weight_decay=weight_decay)
    assert optimizer.name == "lars"
    variables, weights, history = _steps(optimizer)
    expected = _reference(
        weights, history, 0.2, momentum=0.9, weight_decay=0.0, eta=0.001, exclude=True
    )
    for variable, value in zip(variables, expected, strict=True):
        np.testing.assert_allclose(_to_numpy(variable), value, rtol=1e-4, atol=1e-7)


def test_base_optimizer_arguments_reach_the_base_class():
    """Kills **kwargs or name not passed on: global_clipnorm clips the gradients
    before the LARS step, and both survive get_config."""
    optimizer = kps.optimizers.LARS(learning_rate=0.3, global_clipnorm=1.0, name="my_lars")
    assert optimizer.get_config()["global_clipnorm"] == 1.0
    assert optimizer.get_config()["name"] == "my_lars"
    variables, weights, history = _steps(optimizer, steps=1)
    (grads,) = history
    norm = np.sqrt(sum(np.sum(g**2) for g in grads))
    assert norm > 2.0  # the clip is active
    clipped = [[g / norm for g in grads]]
    expected = _reference(
        weights, clipped, 0.3, momentum=0.9, weight_decay=0.0, eta=0.001, exclude=True
    )
    for variable, value in zip(variables, expected, strict=True):
        np.testing.assert_allclose(_to_numpy(variable), value, rtol=1e-4, atol=1e-7)


def test_config_round_trip_keeps_every_lars_argument():
    """Kills momentum, eta, exclude_bias_and_norm or the 1-D rate scale dropped
    from get_config (non-default values for all)."""
    optimizer = kps.optimizers.LARS(
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=1e-3,
        eta=0.02,
        exclude_bias_and_norm=False,
        bias_and_norm_learning_rate_scale=0.3,
    )
    clone = kps.optimizers.LARS.from_config(optimizer.get_config())
    assert clone.momentum == 0.5
    assert clone.weight_decay == 1e-3
    assert clone.eta == 0.02
    assert clone.exclude_bias_and_norm is False
    assert clone.bias_and_norm_learning_rate_scale == 0.3
