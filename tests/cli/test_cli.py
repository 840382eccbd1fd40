"""The `kps` command line: one flag per config field and loss argument, evaluation on labelled
folders and .npz files, export, and the installed entry point.

Accuracies are checked against an independent computation: the images read with PIL or NumPy,
the backbone's features, and scikit-learn's logistic regression on the same split.
"""

import dataclasses
import json
import math
import os
import shutil
import subprocess

import keras
import numpy as np
import pytest
from PIL import Image

import keras_pid_ssl as kps
from conftest import once_per_ci
from keras_pid_ssl import cli
from keras_pid_ssl.config import PretrainConfig
from keras_pid_ssl.config import loss_parameters

# A value for every field of PretrainConfig that differs from its default and passes its
# checks on its own: (flag text, parsed value). A new field without an entry fails
# test_every_config_field_has_a_flag.
FIELD_VALUES = {
    "data_dir": ("/data/cifar", "/data/cifar"),
    "train_subset": ("512", 512),
    "image_size": ("24", 24),
    "augment": ("grayscale", "grayscale"),
    "augmentation": ("host", "host"),
    "method": ("vicreg", "vicreg"),
    "backbone": ("small_convnet", "small_convnet"),
    "backbone_weights": ("w.weights.h5", "w.weights.h5"),
    "backbone_options": ('{"widths": [16, 32]}', {"widths": [16, 32]}),
    "projector_dims": ("64,32", (64, 32)),
    "loss_options": ('{"w_syn": 0.25}', {"w_syn": 0.25}),
    "base_options": ('{"lambda_offdiag": 0.01}', {"lambda_offdiag": 0.01}),
    "target_view": ("weak", "weak"),
    "pid_target": ("ema", "ema"),
    "target_momentum": ("0.5", 0.5),
    "num_clusters": ("7", 7),
    "recluster_every": ("3", 3),
    "epochs": ("7", 7),
    "batch_size": ("64", 64),
    "optimizer": ("adamw", "adamw"),
    "lr": ("0.01", 0.01),
    "weight_decay": ("0.0", 0.0),
    "warmup_epochs": ("2", 2),
    "pid_warmup_epochs": ("3", 3),
    "pid_transition_epochs": ("4", 4),
    "mixed_precision": ("mixed_bfloat16", "mixed_bfloat16"),
    "strategy": ("mirrored", "mirrored"),
    "seed": ("3", 3),
    "deterministic": ("false", False),
    "probe_subset": ("50", 50),
    "probe_every": ("2", 2),
    "knn_every": ("0", 0),
    "monitor_size": ("0", 0),
    "monitor_projection_dim": ("4", 4),
    "export": ("false", False),
    "verbose": ("2", 2),
    "allow_config_change": ("true", True),
}


def _parse(*flags):
    args, _ = cli.parse_args(["pretrain", "--data=images/", *flags])
    return args


def test_every_config_field_has_a_flag():
    fields = {f.name: f for f in dataclasses.fields(PretrainConfig)}
    assert set(FIELD_VALUES) == set(fields) - {"dataset"}  # --data (alias --dataset) sets it
    _, commands = cli.build_parser("pretrain")
    flags = cli.flags_of(commands["pretrain"])
    for name in fields:
        assert f"--{name}" in flags, name


@pytest.mark.parametrize("name", sorted(FIELD_VALUES))
def test_a_field_flag_reaches_the_config(name):
    text, value = FIELD_VALUES[name]
    default = PretrainConfig()
    assert getattr(default, name) != value, "the value must differ from the default"
    config = cli.pretrain_config(_parse(f"--{name}={text}"))
    assert getattr(config, name) == value
    assert type(getattr(config, name)) is type(value)
    # Every other field keeps its default.
    changed = {k for k, v in config.to_dict().items() if v != default.to_dict()[k]}
    assert changed == {name}


def test_flags_left_out_keep_the_library_defaults():
    data, options = cli.pretrain_arguments(_parse())
    assert (data, options) == ("images/", {})
    assert cli.pretrain_config(_parse()) == PretrainConfig()
    assert cli.pretrain_arguments(_parse("--output_dir=O"))[1] == {"output_dir": "O"}
    assert _parse("--dataset=cifar10").data == "cifar10"


def test_w_syn_reaches_loss_options_as_a_float():
    config = cli.pretrain_config(_parse("--w_syn=0.5"))
    assert config.loss_options == {"w_syn": 0.5}
    assert cli.pretrain_config(_parse("--w_syn=1")).loss_options["w_syn"] == 1.0
    assert isinstance(cli.pretrain_config(_parse("--w_syn=1")).loss_options["w_syn"], float)


@pytest.mark.parametrize("method", ["pid", "barlow_twins", "vicreg"])
def test_every_loss_argument_has_a_flag_that_reaches_loss_options(method):
    """A value of the argument's own type (a number, or another valid choice)."""
    texts = {"base": ("vicreg", "vicreg"), "units": ("nats", "nats")}
    texts["estimator"] = ("full", "full")
    for name, default in loss_parameters(method).items():
        text, value = texts.get(name, ("0.375", 0.375))
        assert value != default
        config = cli.pretrain_config(_parse(f"--method={method}", f"--{name}={text}"))
        assert config.loss_options == {name: value}, name
        assert "estimator" in cli.loss_flag_defaults()


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--export"], True),
        (["--export=false"], False),
        (["--export", "0"], False),
        (["--export=True"], True),
        (["--no-export"], False),
        (["--no-deterministic"], None),
    ],
)
def test_boolean_flags(flags, expected):
    args = _parse(*flags)
    if expected is None:
        assert args.deterministic is False and not hasattr(args, "export")
    else:
        assert args.export is expected


def test_a_bad_boolean_is_refused(capsys):
    with pytest.raises(SystemExit) as error:
        _parse("--export=maybe")
    assert error.value.code == 2
    assert "expected true or false, got 'maybe'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pretrain", "--data=x", "--epoch=1"], "unknown flag --epoch. Did you mean --epochs"),
        (["pretrain", "--data=x", "--w_sin=1"], "Did you mean --w_syn"),
        (["pretrain", "--data=x", "--noexport"], "Did you mean --no-export"),
        (
            ["linear-eval", "--backbone_path=b", "--data=d", "--regularisation=2"],
            "--regularization",
        ),
        (["finetune", "--backbone_path=b", "--data=d", "--label_fractions=1"], "--label_fraction"),
        (["pretrain", "--data=x", "stray"], "unexpected argument 'stray'"),
        (["pretrain"], "the following arguments are required: --data/--dataset"),
        (["pretrain", "--data=x", "--epochs=two"], "argument --epochs: invalid int value"),
        (["pretrain", "--data=x", "--projector_dims=a,b"], "comma-separated integers"),
        (["pretrain", "--data=x", "--loss_options=[1]"], "expected a JSON object"),
        (["pretrian"], "invalid choice: 'pretrian'"),
    ],
)
def test_bad_command_lines_exit_2_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(argv)
    assert error.value.code == 2
    assert message in capsys.readouterr().err


def test_help_lists_the_commands_and_every_flag(capsys):
    with pytest.raises(SystemExit) as error:
        cli.main(["--help"])
    assert error.value.code == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out
    with pytest.raises(SystemExit):
        cli.main(["pretrain", "--help"])
    out = capsys.readouterr().out
    names = set(PretrainConfig.field_names()) - {"dataset"}
    names |= {n for m in cli.LOSS_CLASSES for n in loss_parameters(m)}
    for name in names:
        assert f"--{name}" in out, name
    assert "Default per method: pid 1e-05, barlow_twins 1e-05, vicreg 0.0001" in " ".join(
        out.split()
    )
    for command, flags in {
        "linear-eval": ["--backbone_path", "--data", "--test_fraction", "--regularization"],
        "finetune": ["--label_fraction", "--epochs", "--backbone_lr_scale", "--class_names"],
        "export": ["--model_path", "--output_dir", "--format"],
    }.items():
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        for flag in flags:
            assert flag in out, (command, flag)


def test_pretrain_passes_the_flags_to_kps_pretrain_and_prints_where_things_are(
    monkeypatch, tmp_path, capsys
):
    calls = []

    def fake_pretrain(data, **options):
        calls.append((data, options))
        (tmp_path / "backbone.keras").write_text("")
        (tmp_path / "pid_monitor.png").write_text("")
        return {"epochs_completed": 1, "final_metrics": {"loss": 1.25, "probe_accuracy": 0.5}}

    monkeypatch.setattr(kps, "pretrain", fake_pretrain)
    argv = ["pretrain", "--data=imgs", f"--output_dir={tmp_path}", "--epochs=1", "--w_syn=0.5"]
    assert cli.main([*argv, "--backbone=small_convnet", "--export=false"]) == 0
    expected = dict(output_dir=str(tmp_path), epochs=1, w_syn=0.5)
    assert calls == [("imgs", {**expected, "backbone": "small_convnet", "export": False})]
    out = capsys.readouterr().out
    assert "loss 1.25" in out and "probe_accuracy 0.5" in out
    assert os.path.join(str(tmp_path), "backbone.keras") in out
    assert os.path.join(str(tmp_path), "pid_monitor.png") in out


def test_pretrain_refuses_a_bad_config_before_reading_any_data(monkeypatch, capsys):
    monkeypatch.setattr(kps, "pretrain", lambda *a, **k: pytest.fail("pretrain was called"))
    with pytest.raises(SystemExit) as error:
        cli.main(["pretrain", "--data=imgs", "--epochs=0"])
    assert error.value.code == 2
    assert "`epochs` must be an int >= 1. Received: epochs=0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["pretrain", "--data=imgs", "--method=vicreg", "--w_syn=0.5"])
    assert "Unknown pretraining option(s) ['w_syn'] for method 'vicreg'" in (
        capsys.readouterr().err
    )


# Evaluation -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backbone_path(tmp_path_factory):
    keras.utils.set_random_seed(0)
    path = str(tmp_path_factory.mktemp("backbone") / "backbone.keras")
    kps.backbones.SmallConvNet(input_shape=(16, 16, 3), widths=(4, 8)).save(path)
    return path


def _images(rng, label, n):
    """Overlapping classes, class 1 slightly brighter: the accuracy is neither chance nor
    1.0 (0.75 and 0.875 on the carved splits of seeds 0 and 1), so a wrong split or label
    shows in it."""
    low = 10 * label
    return rng.integers(low, low + 216, (n, 16, 16, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """folder/<class>/<i>.png, 2 classes of 20 images."""
    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    for label, name in enumerate(("ants", "bees")):
        (root / name).mkdir()
        for i, image in enumerate(_images(rng, label, 20)):
            Image.fromarray(image).save(root / name / f"{i:02d}.png")
    return root


def _read_folder(root):
    """The folder's images and labels, read with PIL in sorted order."""
    images, labels = [], []
    for label, name in enumerate(sorted(os.listdir(root))):
        for file in sorted(os.listdir(root / name)):
            images.append(np.asarray(Image.open(root / name / file).convert("RGB")))
            labels.append(label)
    return np.stack(images), np.array(labels)


def _reference_split(labels, fraction, seed):
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(max(math.floor(fraction * len(members) + 0.5), 1), len(members) - 1)
        test += rng.choice(members, size=count, replace=False).tolist()
    test = np.sort(test)
    return np.setdiff1d(np.arange(len(labels)), test), test


def _reference_top1(backbone_path, x_train, y_train, x_test, y_test):
    """Standardised backbone features, scikit-learn's logistic regression (C=1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    backbone = keras.models.load_model(backbone_path)
    f_train, f_test = (
        backbone.predict(x.astype("float32") / 255, verbose=0) for x in (x_train, x_test)
    )
    scaler = StandardScaler().fit(f_train)
    classifier = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(f_train), y_train)
    return float(np.mean(classifier.predict(scaler.transform(f_test)) == y_test))


@pytest.mark.parametrize("seed", [0, 1])
def test_linear_eval_on_a_labelled_folder_carves_a_stratified_test_split(
    backbone_path, labelled_folder, tmp_path, capsys, seed
):
    out = tmp_path / "eval"
    argv = ["linear-eval", f"--backbone_path={backbone_path}", f"--data={labelled_folder}"]
    assert cli.main([*argv, f"--output_dir={out}", f"--seed={seed}"]) == 0
    with open(out / "linear_eval.json") as f:
        result = json.load(f)
    images, labels = _read_folder(labelled_folder)
    train, test = _reference_split(labels, 0.2, seed)
    assert (result["train_images"], result["test_images"]) == (32, 8)
    assert result["test_split"]["source"] == "carved"
    assert (result["test_split"]["test_fraction"], result["test_split"]["seed"]) == (0.2, seed)
    expected = _reference_top1(
        backbone_path, images[train], labels[train], images[test], labels[test]
    )
    assert result["top1"] == pytest.approx(expected, abs=1e-9)
    assert result["num_classes"] == 2 and result["top5"] == 1.0
    printed = capsys.readouterr().out
    assert f"linear eval top-1 {100 * expected:.2f}%" in printed
    assert "test split: carved from" in printed and "class-stratified 20%" in printed
    assert str(out / "linear_eval.json") in printed
    with open(out / "class_names.json") as f:
        assert json.load(f) == ["ants", "bees"]


def _keras_npz(path, rng):
    x_train = np.concatenate([_images(rng, 0, 16), _images(rng, 1, 16)])
    x_test = np.concatenate([_images(rng, 0, 5), _images(rng, 1, 5)])
    y_train, y_test = np.repeat([0, 1], 16)[:, None], np.repeat([0, 1], 5)[:, None]
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return x_train, y_train[:, 0], x_test, y_test[:, 0]


def test_linear_eval_on_an_npz_uses_its_test_split(backbone_path, tmp_path, capsys):
    arrays = _keras_npz(tmp_path / "data.npz", np.random.default_rng(1))
    argv = ["linear-eval", f"--backbone_path={backbone_path}", f"--data={tmp_path / 'data.npz'}"]
    assert cli.main([*argv, f"--output_dir={tmp_path}"]) == 0
    with open(tmp_path / "linear_eval.json") as f:
        result = json.load(f)
    assert (result["train_images"], result["test_images"]) == (32, 10)
    assert result["test_split"]["source"] == "given" and result["dataset"] == "npz"
    assert result["top1"] == pytest.approx(_reference_top1(backbone_path, *arrays), abs=1e-9)
    assert "test split: the test split of" in capsys.readouterr().out


def test_linear_eval_floors_are_the_raw_pixels_and_a_random_init_copy(
    backbone_path, tmp_path, capsys
):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x_train, y_train, x_test, y_test = _keras_npz(tmp_path / "data.npz", np.random.default_rng(2))
    argv = ["linear-eval", f"--backbone_path={backbone_path}", f"--data={tmp_path / 'data.npz'}"]
    assert cli.main([*argv, f"--output_dir={tmp_path}", "--floors", "--seed=3"]) == 0
    with open(tmp_path / "linear_eval.json") as f:
        floors = json.load(f)["floors"]
    pixels_train = x_train.reshape(len(x_train), -1).astype("float32")
    pixels_test = x_test.reshape(len(x_test), -1).astype("float32")
    scaler = StandardScaler().fit(pixels_train)
    classifier = LogisticRegression(C=1.0, max_iter=1000)
    classifier.fit(scaler.transform(pixels_train), y_train)
    expected = float(np.mean(classifier.predict(scaler.transform(pixels_test)) == y_test))
    assert floors["raw_pixels"] == pytest.approx(expected, abs=1e-9)
    # The random-init floor: the same architecture with fresh weights (seeded).
    backbone = kps.evaluation.load_backbone(backbone_path)  # loading draws initial weights
    keras.utils.set_random_seed(3)
    fresh = keras.models.clone_model(backbone)
    f_train = kps.evaluation.extract_features(fresh, x_train)
    f_test = kps.evaluation.extract_features(fresh, x_test)
    scaler = StandardScaler().fit(f_train)
    classifier = LogisticRegression(C=1.0, max_iter=1000).fit(scaler.transform(f_train), y_train)
    random_init = float(np.mean(classifier.predict(scaler.transform(f_test)) == y_test))
    assert floors["random_init"] == pytest.approx(random_init, abs=1e-9)
    printed = capsys.readouterr().out
    assert f"floors on the same split: raw pixels {100 * expected:.2f}%" in printed
    assert f"random-init encoder {100 * random_init:.2f}%" in printed


def test_evaluation_errors_are_printed_without_a_traceback(backbone_path, tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", pictures=np.zeros((2, 16, 16, 3), np.uint8), y=np.zeros(2))
    argv = ["linear-eval", f"--backbone_path={backbone_path}", f"--data={tmp_path / 'bad.npz'}"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "kps linear-eval: error:" in err and "holds the arrays ['pictures', 'y']" in err
    assert "Traceback" not in err


def test_finetune_on_a_labelled_folder(backbone_path, labelled_folder, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["finetune", f"--backbone_path={backbone_path}", f"--data={labelled_folder}"]
    flags = ["--epochs=1", "--batch_size=8", "--verbose=0", "--label_fraction=0.5"]
    assert cli.main([*argv, f"--output_dir={out}", *flags]) == 0
    with open(out / "finetune.json") as f:
        result = json.load(f)
    # 16 + 16 carved training images; half of each class kept.
    assert (result["train_images"], result["test_images"]) == (16, 8)
    assert result["test_split"]["source"] == "carved" and result["label_fraction"] == 0.5
    with open(out / "subset_indices.json") as f:
        indices = json.load(f)["indices"]
    assert len(indices) == 16 and max(indices) < 32
    assert "test split: carved from" in capsys.readouterr().out


# Export -----------------------------------------------------------------------------------


def test_export_without_tensorflow_names_the_extra(backbone_path, tmp_path, monkeypatch, capsys):
    real_find_spec = cli.importlib.util.find_spec
    monkeypatch.setattr(
        cli.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real_find_spec(name, *a),
    )
    argv = ["export", f"--model_path={backbone_path}", f"--output_dir={tmp_path / 'sm'}"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert 'pip install "keras-pid-ssl[tensorflow]"' in err and "--format=onnx" in err
    assert not (tmp_path / "sm").exists()


def test_export_refuses_a_file_that_is_not_keras(tmp_path, capsys):
    argv = ["export", f"--model_path={tmp_path / 'model.h5'}", f"--output_dir={tmp_path}"]
    assert cli.main(argv) == 1
    assert "`model_path` must be a .keras file" in capsys.readouterr().err


def test_export_writes_a_savedmodel_with_the_backbone_features(backbone_path, tmp_path):
    tf = pytest.importorskip("tensorflow")
    argv = ["export", f"--model_path={backbone_path}", f"--output_dir={tmp_path / 'sm'}"]
    assert cli.main(argv) == 0
    images = np.random.default_rng(0).uniform(size=(3, 16, 16, 3)).astype("float32")
    exported = tf.saved_model.load(str(tmp_path / "sm"))
    expected = keras.models.load_model(backbone_path).predict(images, verbose=0)
    np.testing.assert_allclose(np.asarray(exported.serve(images)), expected, atol=1e-5)


# The installed command --------------------------------------------------------------------


@once_per_ci()
def test_the_installed_kps_command_answers_help():
    executable = shutil.which("kps")
    if executable is None:
        pytest.skip("the kps entry point is not installed: pip install -e .")
    result = subprocess.run(
        [executable, "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for command in cli.COMMANDS:
        assert command in result.stdout


# End to end -------------------------------------------------------------------------------


def test_pretrain_then_linear_eval_from_the_command_line(labelled_folder, tmp_path, capsys):
    """The issue's acceptance run: `kps pretrain` on a folder of 64 PNGs, then `kps
    linear-eval` of its backbone on a labelled folder, checked against scikit-learn."""
    rng = np.random.default_rng(2)
    (tmp_path / "unlabelled").mkdir()
    for i, image in enumerate(rng.integers(0, 256, (64, 16, 16, 3)).astype(np.uint8)):
        Image.fromarray(image).save(tmp_path / "unlabelled" / f"{i:02d}.png")
    run = tmp_path / "O"
    pretrain = ["pretrain", f"--data={tmp_path / 'unlabelled'}", "--backbone=small_convnet"]
    flags = ["--epochs=1", "--batch_size=32", f"--output_dir={run}", "--export=false"]
    flags.append('--backbone_options={"widths": [4, 8]}')
    assert cli.main([*pretrain, *flags]) == 0
    printed = capsys.readouterr().out
    assert "Pretraining done: 1 epoch(s) on 64 images" in printed
    assert str(run / "backbone.keras") in printed
    with open(run / "summary.json") as f:
        summary = json.load(f)
    assert summary["config"]["backbone"] == "small_convnet" and summary["config"]["epochs"] == 1
    assert summary["config"]["export"] is False and summary["epochs_completed"] == 1

    backbone = str(run / "backbone.keras")
    argv = ["linear-eval", f"--backbone_path={backbone}", f"--data={labelled_folder}"]
    assert cli.main(argv) == 0
    with open(run / "linear_eval.json") as f:
        result = json.load(f)
    images, labels = _read_folder(labelled_folder)
    train, test = _reference_split(labels, 0.2, 0)
    expected = _reference_top1(backbone, images[train], labels[train], images[test], labels[test])
    assert result["top1"] == pytest.approx(expected, abs=1e-9)
    assert (result["train_images"], result["test_images"]) == (32, 8)
