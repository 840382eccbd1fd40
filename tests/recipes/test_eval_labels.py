"""linear_eval and finetune on image folders: one class map for every split and run, saved
with the results; and the resize option their padding hint offers.

The images are near-constant colours (class a red, b green, c blue) and the backbone is a
global average pool, so the classes are linearly separable and a correct evaluation scores
1.0: the control. A label shifted between splits (test folder `c` read as label 1) would
score 0.5.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_pid_ssl as kps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLOURS = {"a": (220, 30, 30), "b": (30, 220, 30), "c": (30, 30, 220), "d": (220, 220, 30)}


def _folder(root, train="abc", test="abc", n=6):
    rng = np.random.default_rng(0)
    for split, classes in (("train", train), ("test", test)):
        for name in classes:
            os.makedirs(os.path.join(root, split, name))
            for i in range(n):
                noise = rng.integers(-20, 21, (8, 8, 3))
                image = np.clip(np.array(COLOURS[name]) + noise, 0, 255).astype("uint8")
                Image.fromarray(image).save(os.path.join(root, split, name, f"{i}.png"))
    return str(root)


@pytest.fixture(scope="module")
def backbone_path(tmp_path_factory):
    """A weightless backbone: the mean colour of an 8x8 RGB image."""
    path = str(tmp_path_factory.mktemp("backbone") / "backbone.keras")
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D()]).save(path)
    return path


def _linear(backbone_path, data_dir, output_dir, **kwargs):
    return kps.evaluation.linear_eval(
        backbone_path, "image_folder", output_dir=str(output_dir), data_dir=data_dir, **kwargs
    )


def _finetune(backbone_path, data_dir, output_dir, **kwargs):
    return kps.evaluation.finetune(
        backbone_path,
        "image_folder",
        str(output_dir),
        data_dir=data_dir,
        epochs=10,
        batch_size=6,
        lr=0.5,
        verbose=0,
        **kwargs,
    )


def _saved_map(output_dir):
    with open(os.path.join(output_dir, "class_names.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("evaluate", [_linear, _finetune], ids=["linear_eval", "finetune"])
def test_a_test_split_lacking_a_class_scores_as_the_control(evaluate, backbone_path, tmp_path):
    control = evaluate(backbone_path, _folder(tmp_path / "control"), tmp_path / "out_control")
    lacking = evaluate(backbone_path, _folder(tmp_path / "lacking", test="ac"), tmp_path / "out")
    assert control["top1"] == 1.0  # separable colours: the control is perfect
    assert lacking["top1"] == control["top1"]  # a shifted label "c" -> 1 would give 0.5
    assert lacking["test_images"] == 12 and lacking["num_classes"] == 3
    assert _saved_map(tmp_path / "out") == ["a", "b", "c"]
    assert lacking["class_names_path"] == str(tmp_path / "out" / "class_names.json")


@pytest.mark.parametrize("evaluate", [_linear, _finetune], ids=["linear_eval", "finetune"])
def test_an_unknown_test_class_names_the_class_and_folder(evaluate, backbone_path, tmp_path):
    data = _folder(tmp_path / "data", train="ab", test="abd")
    with pytest.raises(ValueError, match=r"class 'd' \(folder .*test/d\)"):
        evaluate(backbone_path, data, tmp_path / "out")


def test_the_saved_map_is_reused_by_a_later_run(backbone_path, tmp_path):
    out = tmp_path / "out"
    _linear(backbone_path, _folder(tmp_path / "first"), out)
    assert _saved_map(out) == ["a", "b", "c"]
    # A later run in the same folder on data without class "a": built afresh, the map
    # would label b 0 and c 1; reused, b stays 1 and c stays 2 (3 classes).
    later = _linear(backbone_path, _folder(tmp_path / "later", train="bc", test="bc"), out)
    assert later["num_classes"] == 3 and later["top1"] == 1.0
    assert _saved_map(out) == ["a", "b", "c"]
    tuned = _finetune(backbone_path, str(tmp_path / "later"), out)
    assert tuned["num_classes"] == 3 and tuned["top1"] == 1.0
    # A class the saved map lacks is refused, naming the map to delete.
    with pytest.raises(ValueError, match=r"class 'd' .*delete .*out/class_names\.json"):
        _linear(backbone_path, _folder(tmp_path / "new", train="abd", test="ab"), out)


def test_a_given_map_sets_the_labels_and_is_saved_with_the_run(backbone_path, tmp_path):
    data = _folder(tmp_path / "data", train="bc", test="c")
    given = kps.data.image_folder.write_class_names(tmp_path / "map.json", ["c", "a", "b"])
    result = _linear(backbone_path, data, tmp_path / "out", class_names=given)
    assert result["num_classes"] == 3 and result["top1"] == 1.0
    assert _saved_map(tmp_path / "out") == ["c", "a", "b"]
    # The labels come from the map: c is 0 in every split.
    _, labels = kps.data.load("image_folder", "test", data_dir=data, class_names=given)
    np.testing.assert_array_equal(labels, np.zeros(6))


def test_class_names_are_refused_for_datasets_with_fixed_labels(backbone_path, tmp_path):
    with pytest.raises(ValueError, match=r"`class_names` sets the labels of an image folder"):
        kps.evaluation.linear_eval(backbone_path, "fashion_mnist", class_names=["a"])


def test_a_flat_train_folder_is_refused_as_unlabeled(backbone_path, tmp_path):
    os.makedirs(tmp_path / "data" / "train")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "data" / "train" / "1.png")
    with pytest.raises(ValueError, match=r"train is flat \(unlabeled\)"):
        _linear(backbone_path, str(tmp_path / "data"), tmp_path / "out")


@pytest.fixture(scope="module")
def grey_backbone_path(tmp_path_factory):
    """An 8x8 grey backbone: smaller than the 12x12 images of `tiny_fashion_mnist`."""
    path = str(tmp_path_factory.mktemp("grey") / "backbone.keras")
    keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.AveragePooling2D(4), keras.layers.Flatten()]
    ).save(path)
    return path


def test_resize_method_reaches_a_backbone_smaller_than_the_images(
    grey_backbone_path, tiny_fashion_mnist, tmp_path
):
    # Fashion-MNIST pads by default, which cannot shrink 12x12 to 8x8: the hint
    # names resize_method, and passing it works.
    with pytest.raises(ValueError, match=r"12x12 images to the smaller .*resize_method='resize'"):
        kps.evaluation.linear_eval(grey_backbone_path, "fashion_mnist", data_dir=tiny_fashion_mnist)
    result = kps.evaluation.linear_eval(
        grey_backbone_path,
        "fashion_mnist",
        output_dir=str(tmp_path),
        data_dir=tiny_fashion_mnist,
        resize_method="resize",
    )
    # The class sets which 6x6 quadrant is bright; 2x2 pooled features keep it.
    assert result["top1"] == 1.0 and result["feature_dim"] == 4
    assert not os.path.exists(tmp_path / "class_names.json")  # fixed labels: no map
    with pytest.raises(ValueError, match=r"`resize_method` must be one of"):
        kps.evaluation.finetune(
            grey_backbone_path, "fashion_mnist", str(tmp_path), resize_method="crop"
        )


@pytest.mark.parametrize("recipe", ["linear_eval", "finetune"])
def test_recipe_flags_resize_method_and_class_names(recipe, backbone_path, tmp_path):
    data = _folder(tmp_path / "data", train="abc", test="ac")
    given = kps.data.image_folder.write_class_names(tmp_path / "map.json", ["a", "b", "c"])
    extra = ["--epochs=10", "--batch_size=6", "--lr=0.5"] if recipe == "finetune" else []
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "recipes", f"{recipe}.py"),
            f"--backbone_path={backbone_path}",
            "--dataset=image_folder",
            f"--data_dir={data}",
            f"--output_dir={tmp_path / 'out'}",
            "--resize_method=resize",
            f"--class_names={given}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "out" / f"{recipe}.json") as f:
        assert json.load(f)["top1"] == 1.0
    assert _saved_map(tmp_path / "out") == ["a", "b", "c"]
