"""LARS: checks that kill the mutants test_lars.py lets live (docs/testing.md).

float64 variables against a float64 NumPy reference at rtol 1e-12: every
hyperparameter and the gradient must be cast to the variable's dtype, not to
float32 (keras.config.floatx()), which would round 0.9, 0.1 or 0.001 at 1e-8.
"""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps


def _reference_step(w, g, mu, lr, *, momentum, weight_decay, eta, bias_scale):
    """One LARS step in float64 NumPy (Barlow Twins' main.py, bias exempt)."""
    exempt = w.ndim <= 1
    if not exempt:
        g = g + weight_decay * w
        w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
        g = g * (eta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0)
    if exempt:
        lr = lr * bias_scale
    mu = momentum * mu + g
    return w - lr * mu, mu


def test_lars_updates_float64_variables_in_float64():
    """Kills update_step's casts to the variable dtype replaced by casts to
    floatx (`dtype = None`, and the learning rate, gradient, weight decay,
    eta, bias learning-rate scale or momentum cast with dtype None)."""
    probe = keras.Variable(np.zeros(1), dtype="float64")
    if keras.ops.convert_to_numpy(probe).dtype != np.float64:
        pytest.skip("no float64 arrays on this backend (JAX without jax_enable_x64)")
    # TensorFlow turns a Python float into a float32 tensor before casting it
    # to float64 (0.1 -> 0.100000001): up to 3e-9 relative; the mutants' float32
    # gradients and hyperparameters move the weights by about 1e-8.
    rtol = 1e-8 if keras.backend.backend() == "tensorflow" else 1e-12
    hyper = dict(momentum=0.9, weight_decay=0.1, eta=0.001)
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=(4, 3)), rng.normal(size=(3,))]
    variables = [keras.Variable(w, dtype="float64") for w in weights]
    optimizer = kps.optimizers.LARS(
        learning_rate=0.5, bias_and_norm_learning_rate_scale=0.1, **hyper
    )
    momenta = [np.zeros_like(w) for w in weights]
    for _ in range(3):
        # Gradients with digits float32 cannot hold.
        grads = [rng.normal(size=w.shape) / 3.0 for w in weights]
        optimizer.apply([keras.ops.convert_to_tensor(g, "float64") for g in grads], variables)
        steps = [
            _reference_step(w, g, mu, 0.5, bias_scale=0.1, **hyper)
            for w, g, mu in zip(weights, grads, momenta, strict=True)
        ]
        weights, momenta = [s[0] for s in steps], [s[1] for s in steps]
    for variable, expected in zip(variables, weights, strict=True):
        assert keras.ops.convert_to_numpy(variable).dtype == np.float64
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variable), expected, rtol=rtol, atol=0
        )


def test_lars_momentum_slots_are_named_momentum():
    """Kills the slot name changed ("XXmomentumXX", "MOMENTUM"): the slots'
    paths are what checkpoints and `optimizer.variables` readers see."""
    variables = [keras.Variable(np.ones((2, 2)), name="kernel")]
    optimizer = kps.optimizers.LARS()
    optimizer.build(variables)
    names = [v.name for v in optimizer.momentums]
    assert names == ["kernel_momentum"], names
