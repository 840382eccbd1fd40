"""recipes/linear_eval.py and finetune.py take the data sources of `kps linear-eval`:
--data=<labelled folder | .npz | name>, next to their --dataset/--data_dir flags."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
from PIL import Image

import keras_pid_ssl as kps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(recipe, *flags):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", recipe), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )


def test_linear_eval_recipe_reads_a_labelled_folder_and_says_it_carved_the_test_split(tmp_path):
    """Near-constant colours per class and a mean-colour backbone: separable, so 1.0."""
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(
                tmp_path / "data" / name / f"{i}.png"
            )
    backbone = str(tmp_path / "backbone.keras")
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D()]).save(backbone)
    result = _run(
        "linear_eval.py",
        f"--backbone_path={backbone}",
        f"--data={tmp_path / 'data'}",
        "--test_fraction=0.3",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test split: carved from" in result.stdout and "30%" in result.stdout
    with open(tmp_path / "out" / "linear_eval.json") as f:
        linear = json.load(f)
    assert (linear["train_images"], linear["test_images"]) == (14, 6)
    assert linear["top1"] == 1.0 and linear["test_split"]["test_fraction"] == 0.3
    # Equal to the library call with the same arguments.
    direct = kps.evaluation.linear_eval(
        backbone, str(tmp_path / "data"), output_dir=str(tmp_path / "direct"), test_fraction=0.3
    )
    assert direct["test_split"] == linear["test_split"]

    both = _run(
        "finetune.py",
        f"--backbone_path={backbone}",
        f"--data={tmp_path / 'data'}",
        "--dataset=cifar10",
        f"--output_dir={tmp_path / 'ft'}",
    )
    assert both.returncode != 0
    assert "both name the data: pass one of them" in both.stderr + both.stdout
