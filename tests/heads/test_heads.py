"""Projector and LinearClassifier: structure, numbers, serialisation."""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps


def test_projector_computes_dense_bn_relu_then_dense():
    projector = kps.heads.Projector(hidden_dims=(6,), output_dim=3)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(projector(x, training=True))
    w1 = np.array(projector.blocks[0][0].kernel)
    bn = projector.blocks[0][1]
    h = x @ w1
    h = (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5) * np.array(bn.gamma) + np.array(bn.beta)
    expected = np.maximum(h, 0) @ np.array(projector.output_dense.kernel)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert projector.blocks[0][0].bias is None and projector.output_dense.bias is None


def test_projector_without_hidden_layers_is_linear_and_round_trips():
    projector = kps.heads.Projector(hidden_dims=(), output_dim=2, output_use_bias=True)
    projector.build((None, 3))
    assert len(projector.weights) == 2
    config = keras.saving.serialize_keras_object(projector)
    restored = keras.saving.deserialize_keras_object(config)
    assert restored.get_config() == projector.get_config()


def test_linear_classifier_outputs_logits_and_validates():
    head = kps.heads.LinearClassifier(num_classes=4, use_batch_norm=True)
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    assert tuple(head(x).shape) == (6, 4)
    with pytest.raises(ValueError, match="num_classes"):
        kps.heads.LinearClassifier(num_classes=1)
    with pytest.raises(ValueError, match="output_dim"):
        kps.heads.Projector(output_dim=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        # int(32.7) used to build a 32-wide layer silently.
        (dict(hidden_dims=(64, 32.7)), r"`hidden_dims\[1\]` must be an int >= 1.*=32\.7"),
        (dict(output_dim=32.7), r"`output_dim` must be an int >= 1. Received: output_dim=32\.7"),
        (dict(hidden_dims=(0,)), r"`hidden_dims\[0\]` must be an int >= 1"),
        (dict(hidden_dims=64), "`hidden_dims` must be a tuple of positive ints"),
        (dict(hidden_dims="64"), "`hidden_dims` must be a tuple of positive ints"),
    ],
)
def test_projector_rejects_widths_that_are_not_positive_ints(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kps.heads.Projector(**kwargs)


def test_projector_accepts_numpy_int_widths():
    projector = kps.heads.Projector(hidden_dims=np.array([4]), output_dim=np.int64(3))
    assert projector.hidden_dims == (4,) and projector.output_dim == 3
    assert tuple(projector(np.zeros((2, 5), "float32")).shape) == (2, 3)


def test_linear_classifier_rejects_a_fractional_class_count():
    with pytest.raises(
        ValueError, match="`num_classes` must be an int >= 2. Received: num_classes=2.5"
    ):
        kps.heads.LinearClassifier(num_classes=2.5)
