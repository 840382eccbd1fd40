"""Backbones: architecture facts, pooled outputs, serialisation."""

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps


def _conv_count(model):
    return sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)


@pytest.mark.parametrize(
    "factory,depth,features,params",
    [
        # Parameter counts of torchvision's resnet18/50 minus the fc layer
        # (11,689,512 - 513,000 and 25,557,032 - 2,049,000).
        (kps.backbones.ResNet18, 18, 512, 11_176_512),
        (kps.backbones.ResNet50, 50, 2048, 23_508_032),
    ],
)
def test_imagenet_resnet_matches_torchvision_parameter_count(factory, depth, features, params):
    model = factory(input_shape=(64, 64, 3), variant="imagenet")
    assert model.output_shape == (None, features)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == params  # BN running statistics are buffers in PyTorch


def test_resnet34_has_the_published_depth():
    model = kps.backbones.ResNet34(input_shape=(32, 32, 3), variant="cifar")
    # 33 3x3 convolutions + 3 projection shortcuts.
    assert _conv_count(model) == 36
    assert model.output_shape == (None, 512)


def test_cifar_variant_keeps_resolution_in_the_stem():
    cifar = kps.backbones.ResNet18(input_shape=(32, 32, 3), variant="cifar")
    imagenet = kps.backbones.ResNet18(input_shape=(32, 32, 3), variant="imagenet")
    assert cifar.get_layer("stem_conv").kernel.shape == (3, 3, 3, 64)
    assert imagenet.get_layer("stem_conv").kernel.shape == (7, 7, 3, 64)
    assert cifar.get_layer("stage1_block2_out").output.shape[1:3] == (32, 32)
    assert imagenet.get_layer("stage1_block2_out").output.shape[1:3] == (8, 8)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in cifar.layers)


@pytest.mark.parametrize(
    "make",
    [
        lambda: kps.backbones.ResNet(depth=18, variant="cifar", input_shape=(8, 8, 3), width=4),
        lambda: kps.backbones.SmallConvNet(input_shape=(8, 8, 1), widths=(4, 8)),
    ],
)
def test_backbone_serialises_and_reproduces_outputs(make, tmp_path):
    model = make()
    x = np.random.default_rng(0).uniform(size=(2,) + model.input_shape[1:]).astype("float32")
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)
    path = str(tmp_path / "backbone.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def test_backbones_reject_bad_arguments():
    with pytest.raises(ValueError, match="depth"):
        kps.backbones.ResNet(depth=20)
    with pytest.raises(ValueError, match="variant"):
        kps.backbones.ResNet18(variant="tiny")
    with pytest.raises(ValueError, match="input_shape"):
        kps.backbones.SmallConvNet(input_shape=(28, 28))
    with pytest.raises(ValueError, match="widths"):
        kps.backbones.SmallConvNet(widths=())
