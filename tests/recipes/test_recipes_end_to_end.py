"""Pretrain -> kill mid-epoch -> resume -> export -> linear eval and fine-tune."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_pid_ssl as kps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class InterruptAt(keras.callbacks.Callback):
    """Simulates a kill: raises in the middle of epoch index `epoch`."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self._current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self._current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._current == self.epoch and batch == self.batch:
            raise KeyboardInterrupt("simulated kill")


def _pretrain(output_dir, data_dir, **kwargs):
    return kps.training.pretrain(
        output_dir,
        dataset="fashion_mnist",
        data_dir=data_dir,
        method="pid",
        backbone="small_convnet",
        backbone_options={"widths": [4, 8]},
        epochs=3,
        batch_size=16,
        optimizer="lars",
        warmup_epochs=1,
        projector_dims=(16, 8),
        w_syn=1.0,
        pid_warmup_epochs=1,
        pid_transition_epochs=1,
        probe_subset=48,
        knn_every=1,
        monitor_size=32,
        verbose=0,
        **kwargs,
    )


def test_pretrain_resume_export_and_evaluate(tiny_fashion_mnist, tmp_path):
    run = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        _pretrain(run, tiny_fashion_mnist, extra_callbacks=[InterruptAt(epoch=1, batch=2)])
    with open(os.path.join(run, "backup", "latest")) as f:
        assert f.read() == "epoch-000001"  # epoch 1 finished, epoch 2 was killed

    summary = _pretrain(run, tiny_fashion_mnist)
    assert summary["resumed_from_epoch"] == 1
    assert summary["epochs_run_this_call"] == 2
    with open(os.path.join(run, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # no epoch lost or repeated
    # The protocol continued at the right stage: warm-up, transition (alpha 1/2), PID.
    np.testing.assert_allclose([float(r["w_syn"]) for r in rows], [0.0, 0.5, 1.0], atol=1e-6)
    for name in ("probe_accuracy", "knn_accuracy", "monitor_synergy", "synergy"):
        assert np.isfinite(float(rows[-1][name]))
    for name in ("model.keras", "backbone.keras", "summary.json", "pid_monitor.png"):
        assert os.path.exists(os.path.join(run, name)), name
    assert os.path.exists(os.path.join(run, "backbone", "saved_model.pb"))

    # linear_eval.py reads the exported SavedModel (as a user runs it).
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "recipes", "linear_eval.py"),
            f"--backbone_path={os.path.join(run, 'backbone')}",
            "--dataset=fashion_mnist",
            f"--data_dir={tiny_fashion_mnist}",
            f"--output_dir={run}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "linear eval top-1" in result.stdout
    with open(os.path.join(run, "linear_eval.json")) as f:
        linear = json.load(f)
    assert linear["test_images"] == 48 and linear["top1"] > 0.5  # chance is 0.25

    # finetune reads the .keras backbone, on a seeded stratified 50% subset.
    tuned = kps.evaluation.finetune(
        os.path.join(run, "backbone.keras"),
        "fashion_mnist",
        str(tmp_path / "ft"),
        data_dir=tiny_fashion_mnist,
        label_fraction=0.5,
        epochs=2,
        batch_size=16,
        verbose=0,
    )
    assert tuned["train_images"] == 48 and 0.0 <= tuned["top1"] <= 1.0
    with open(tmp_path / "ft" / "subset_indices.json") as f:
        indices = json.load(f)["indices"]
    assert indices == kps.evaluation.stratified_subset(np.arange(96) % 4, 0.5, 0).tolist()


def test_stratified_subset_keeps_class_proportions_and_is_seeded():
    labels = np.repeat(np.arange(5), [100, 50, 20, 10, 2])
    subset = kps.evaluation.stratified_subset(labels, 0.1, seed=3)
    assert np.bincount(labels[subset]).tolist() == [10, 5, 2, 1, 1]
    assert subset.tolist() == kps.evaluation.stratified_subset(labels, 0.1, seed=3).tolist()
    assert subset.tolist() != kps.evaluation.stratified_subset(labels, 0.1, seed=4).tolist()
    with pytest.raises(ValueError, match="label_fraction"):
        kps.evaluation.stratified_subset(labels, 0.0, seed=0)


def test_linear_eval_rejects_a_missing_backbone(tmp_path):
    with pytest.raises(ValueError, match="backbone_path"):
        kps.evaluation.linear_eval(str(tmp_path / "nothing.keras"), "fashion_mnist")
    with pytest.raises(ValueError, match="saved_model.pb"):
        kps.evaluation.linear_eval(str(tmp_path), "fashion_mnist")
