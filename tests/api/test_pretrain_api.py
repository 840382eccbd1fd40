"""`kps.pretrain`: one call on a folder, an array or a tf.data.Dataset, with any backbone."""

import json
import os
import warnings

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps
from keras_pid_ssl.api import pretrain

TINY = dict(
    epochs=1,
    batch_size=16,
    optimizer="adamw",
    projector_dims=(16, 8),
    monitor_size=16,
    monitor_projection_dim=4,
    export=False,
    verbose=0,
)


def _png_folder(folder, count=64, size=16):
    from PIL import Image

    rng = np.random.default_rng(0)
    os.makedirs(folder)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:03d}.png"))
    return folder


def _images(count=64, size=16, channels=3):
    return np.random.default_rng(1).integers(0, 256, (count, size, size, channels), np.uint8)


def test_an_image_folder_with_a_builtin_backbone(tmp_path):
    folder = _png_folder(str(tmp_path / "images"))
    out = str(tmp_path / "run")
    summary = pretrain(folder, backbone="small_convnet", output_dir=out, **TINY)
    assert summary["train_images"] == 64 and summary["epochs_completed"] == 1
    assert summary["config"]["dataset"] == "image_folder"
    assert summary["config"]["data_dir"] == folder
    assert summary["input_shape"] == [16, 16, 3]
    backbone = keras.saving.load_model(os.path.join(out, "backbone.keras"))
    assert backbone(np.zeros((2, 16, 16, 3), "float32")).shape == (2, 128)
    # The PID defaults reached the loss: those of PIDLoss's signature.
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    defaults = kps.config.loss_parameters("pid")
    assert model.ssl_loss.pid_coefficients == {
        name: defaults[name] for name in ("invariance_weight", "w_joint", "w_red", "w_syn")
    }
    assert (model.ssl_loss.estimator, model.ssl_loss.delta) == ("diagonal", defaults["delta"])


def test_mixed_precision_is_the_runs_and_the_global_policy_is_restored(tmp_path):
    out = str(tmp_path / "run")
    trained = []

    class ComputeDtype(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            conv = next(layer for layer in self.model.encoder.layers if layer.weights)
            trained.append((conv.compute_dtype, conv.variable_dtype))

    options = dict(TINY, mixed_precision="mixed_bfloat16", extra_callbacks=[ComputeDtype()])
    summary = pretrain(_images(), backbone="small_convnet", output_dir=out, **options)
    assert trained == [("bfloat16", "float32")]
    assert np.isfinite(summary["final_metrics"]["loss"])
    # Models built after the run get the policy from before it.
    assert keras.config.dtype_policy().name == "float32"


def test_a_keras_applications_model_as_backbone(tmp_path):
    encoder = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=None, pooling="avg"
    )
    summary = pretrain(
        _images(size=32),
        backbone=encoder,
        output_dir=str(tmp_path / "run"),
        **{**TINY, "method": "barlow_twins"},
    )
    assert summary["config"]["backbone"] == "custom" and summary["config"]["dataset"] == "array"
    assert np.isfinite(summary["final_metrics"]["loss"])
    backbone = keras.saving.load_model(str(tmp_path / "run" / "backbone.keras"))
    features = backbone(np.zeros((1, 32, 32, 3), "float32"))
    assert features.shape == (1, encoder.output_shape[-1])


def test_a_keras_applications_name_scales_images_to_its_preprocessing(tmp_path):
    encoder = kps.backbones.build("MobileNetV3Small", (32, 32, 3))
    # MobileNetV3 rescales [0, 255] to [-1, 1]; the wrapper feeds it 255 x [0, 1].
    inner = [layer for layer in encoder.layers if isinstance(layer, keras.Model)][0]
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder(images)),
        keras.ops.convert_to_numpy(inner(images * 255.0)),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="Unknown backbone 'mobilenet'"):
        kps.backbones.build("mobilenet", (32, 32, 3))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kps.backbones.build("MobileNetV3Small", (32, 32, 3), weights=str(tmp_path / "no.h5"))


def test_rerunning_a_finished_run_keeps_its_summary_byte_identical(tmp_path):
    out = str(tmp_path / "run")
    pretrain(_images(), backbone="small_convnet", output_dir=out, **TINY)
    path = os.path.join(out, "summary.json")
    with open(path, "rb") as f:
        before = f.read()
    with pytest.warns(UserWarning, match="already finished"):
        again = pretrain(_images(), backbone="small_convnet", output_dir=out, **TINY)
    with open(path, "rb") as f:
        assert f.read() == before
    assert again == json.loads(before)


def test_one_epoch_with_every_other_setting_at_its_default(tmp_path):
    # Only what the data forces: 256 images for the default batch of 256.
    summary = pretrain(
        _images(count=256, size=8),
        output_dir=str(tmp_path / "run"),
        epochs=1,
        export=False,
        verbose=0,
    )
    config = summary["config"]
    assert (config["method"], config["backbone"], config["optimizer"]) == (
        "pid",
        "resnet18",
        "lars",
    )
    assert (config["warmup_epochs"], config["pid_warmup_epochs"]) == (0, 0)
    assert summary["epochs_completed"] == 1


def test_a_tf_data_dataset_of_images(tmp_path):
    tf = pytest.importorskip("tensorflow")
    images = _images(count=48)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(48))).batch(10)
    summary = pretrain(dataset, backbone="small_convnet", output_dir=str(tmp_path / "run"), **TINY)
    assert summary["train_images"] == 48


def test_an_npz_file_gives_its_training_images(tmp_path):
    from keras_pid_ssl.api import _resolve_data

    gray = _images(count=40, channels=1)[..., 0]  # keras.datasets' MNIST layout
    path = tmp_path / "mnist_like.npz"
    np.savez(path, x_train=gray, y_train=np.zeros(40), x_test=gray[:8], y_test=np.zeros(8))
    images, options = _resolve_data(str(path))
    np.testing.assert_array_equal(images, gray[..., None])
    assert options == {"dataset": "array"}
    np.savez(tmp_path / "unlabelled.npz", images=_images(count=20))
    images, _ = _resolve_data(str(tmp_path / "unlabelled.npz"))
    np.testing.assert_array_equal(images, _images(count=20))
    summary = pretrain(
        str(path), backbone="small_convnet", output_dir=str(tmp_path / "run"), **TINY
    )
    assert summary["train_images"] == 40
    assert summary["config"]["augment"] == "grayscale"  # one channel: no colour jitter
    np.savez(tmp_path / "other.npz", pictures=gray)
    with pytest.raises(ValueError, match=r"holds the arrays \['pictures'\]"):
        _resolve_data(str(tmp_path / "other.npz"))
    np.save(tmp_path / "single.npy", gray)
    os.rename(tmp_path / "single.npy", tmp_path / "single.npz")
    with pytest.raises(ValueError, match="single array"):
        _resolve_data(str(tmp_path / "single.npz"))


def test_bad_data_and_backbones_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a dataset name"):
        pretrain(str(tmp_path / "missing"), output_dir=str(tmp_path / "run"), **TINY)
    with pytest.raises(TypeError, match="`data` must be"):
        pretrain([1, 2, 3], output_dir=str(tmp_path / "run"), **TINY)
    with pytest.raises(TypeError, match="`backbone` must be"):
        pretrain(_images(), backbone=3, output_dir=str(tmp_path / "run"), **TINY)
    with pytest.raises(TypeError, match="not `dataset`"):
        pretrain(_images(), dataset="cifar10", output_dir=str(tmp_path / "run"), **TINY)
    with pytest.raises(TypeError, match=r"Unknown pretraining option\(s\) \['w_sin'\]"):
        pretrain(_images(), output_dir=str(tmp_path / "run"), w_sin=1.0, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"\['pid_warmup_epochs'\] are PID settings"):
            pretrain(
                _images(),
                method="vicreg",
                output_dir=str(tmp_path / "run"),
                pid_warmup_epochs=1,
                **TINY,
            )


def test_backbone_options_reach_the_constructor():
    encoder = kps.backbones.build("small_convnet", (16, 16, 3), widths=[8, 16])
    assert encoder(np.zeros((1, 16, 16, 3), "float32")).shape == (1, 16)
    config = kps.config.PretrainConfig(backbone_options={"widths": [8, 16]})
    assert kps.config.PretrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="`backbone_options` configure a backbone built by name"):
        kps.config.PretrainConfig(backbone="custom", backbone_options={"widths": [8]})


def test_a_config_keeps_its_method_and_backbone_unless_overridden(tmp_path):
    config = kps.PretrainConfig(method="vicreg", backbone="small_convnet", **TINY)
    summary = pretrain(_images(), config=config, output_dir=str(tmp_path / "a"))
    assert (summary["config"]["method"], summary["config"]["backbone"]) == (
        "vicreg",
        "small_convnet",
    )
    assert summary["config"]["loss_options"]["invariance_weight"] == 25.0  # VICReg's own
    summary = pretrain(
        _images(), config=config, method="barlow_twins", output_dir=str(tmp_path / "b")
    )
    assert summary["config"]["method"] == "barlow_twins"


def test_resuming_with_other_images_is_refused(tmp_path):
    settings = {**TINY, "backbone": "small_convnet", "method": "barlow_twins"}
    out = str(tmp_path / "run")
    pretrain(_images(), output_dir=out, **settings)
    other = _images()[::-1].copy()
    with pytest.raises(ValueError, match=r"images_fingerprint: stored '\(64, 16, 16, 3\) uint8"):
        pretrain(other, output_dir=out, **{**settings, "epochs": 2})
    folder_a = _png_folder(str(tmp_path / "a"), count=32)
    folder_b = _png_folder(str(tmp_path / "b"), count=32)
    out = str(tmp_path / "folder_run")
    pretrain(folder_a, output_dir=out, **settings)
    with pytest.raises(ValueError, match=r"data_dir: stored '.*a', now '.*b'"):
        pretrain(folder_b, output_dir=out, **{**settings, "epochs": 2})
