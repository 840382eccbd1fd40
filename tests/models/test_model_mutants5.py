"""SSLModel's constructor and SSLLoss's dtype: checks that kill the mutants the
fresh mutmut run (torch) let live in `SSLLoss.__init__`, `SSLModel.__init__`,
`_build_projector` and `_set_augment`.

Each test names the mutants (docs/testing.md) it kills. References are the
refusal messages in full, the parameter counts of the parts, and the loss a
float32-policy loss gives on the same embeddings.
"""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from conftest import tiny_encoder
from conftest import tiny_projector


def test_constructor_refusals_say_what_was_wrong_and_what_came():
    """Kills `SSLModel.__init____mutmut_2` and `__mutmut_4` (the encoder and
    projector refusals carry no message) and `__mutmut_7` to `__mutmut_9`
    (the loss refusal's first sentence padded, lower-cased, upper-cased)."""
    loss = kps.losses.BarlowTwinsLoss()
    with pytest.raises(ValueError) as info:
        kps.SSLModel("resnet", tiny_projector(), loss)
    assert str(info.value) == "`encoder` must be a Keras model or layer. Received: 'resnet'"
    with pytest.raises(ValueError) as info:
        kps.SSLModel(tiny_encoder(), "mlp", loss)
    assert str(info.value) == "`projector` must be a Keras layer. Received: 'mlp'"
    with pytest.raises(ValueError) as info:
        kps.SSLModel(tiny_encoder(), tiny_projector(), "barlow_twins")
    assert str(info.value) == (
        "`loss` must be an SSL loss such as kps.losses.BarlowTwinsLoss(). "
        "Received: loss='barlow_twins'"
    )


def test_a_model_is_built_once_its_parts_are():
    """Kills `_build_projector__mutmut_13` and `__mutmut_14` (`built` left
    None / False): a model on a functional encoder is built from the start,
    so `count_params` answers (the encoder's and the projector's parameters)
    before any call."""
    encoder, projector = tiny_encoder(), tiny_projector()
    model = kps.SSLModel(encoder, projector, kps.losses.BarlowTwinsLoss())
    assert model.count_params() == encoder.count_params() + projector.count_params()
    assert model.built is True


def test_the_augment_step_counter_is_named_augment_step():
    """Kills `_set_augment__mutmut_21`, `__mutmut_26` (the counter gets Keras's
    automatic name), `__mutmut_33` and `__mutmut_34` (renamed): the model's
    step counter is the non-trainable int32 variable `augment_step`."""
    model = kps.SSLModel(
        tiny_encoder(),
        tiny_projector(),
        kps.losses.BarlowTwinsLoss(),
        augment=kps.augment.preset("grayscale", image_size=8, seed=3),
    )
    assert model.augment_step.name == "augment_step"
    counters = [v for v in model.non_trainable_variables if v.name == "augment_step"]
    assert counters == [model.augment_step]
    assert keras.backend.standardize_dtype(model.augment_step.dtype) == "int32"


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX's 64-bit mode")
def test_the_augment_step_counter_is_int32_under_jax_x64():
    """Kills, on JAX with 64-bit mode on only, `_set_augment__mutmut_18` and
    `__mutmut_23` (the counter's dtype left to Keras, which makes the Python
    int 0 an int64 there; int32 on torch and TensorFlow, where they are
    equivalent)."""
    import jax

    x64 = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        model = kps.SSLModel(
            tiny_encoder(), tiny_projector(), kps.losses.BarlowTwinsLoss(), augment="grayscale"
        )
        dtype = keras.backend.standardize_dtype(model.augment_step.dtype)
    finally:
        jax.config.update("jax_enable_x64", x64)
    assert dtype == "int32"


def test_a_loss_computes_in_float32_under_a_mixed_precision_policy():
    """Kills `SSLLoss.__init____mutmut_1` (the loss layer takes the global
    dtype policy): built under `mixed_bfloat16`, a loss still has the float32
    policy and gives on float32 embeddings the loss a float32-policy loss
    gives, not that of the embeddings rounded to bfloat16."""
    rng = np.random.default_rng(0)
    z1, z2 = (rng.normal(size=(16, 8)).astype("float32") for _ in range(2))
    reference = float(keras.ops.convert_to_numpy(kps.losses.BarlowTwinsLoss()(z1, z2)))
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        loss = kps.losses.BarlowTwinsLoss()
        value = float(keras.ops.convert_to_numpy(loss(z1, z2)))
    finally:
        keras.config.set_dtype_policy(policy)
    np.testing.assert_allclose(value, reference, rtol=1e-6)
    assert loss.dtype_policy.name == "float32"
    assert loss.compute_dtype == "float32"
