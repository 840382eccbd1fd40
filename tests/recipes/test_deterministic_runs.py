"""`--seed` repeats a run exactly; a killed-then-resumed run ends where an uninterrupted one does.

Each run is its own Python process, as a user's runs are: nothing (random
generators, `tf.data` state, op determinism) carries over between them. The runs
that do not wait for one another go two at a time (the processes are independent).
"""

import csv
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RUN = """
import sys
import keras
import keras_pid_ssl as kps

output_dir, data_dir = sys.argv[1], sys.argv[2]
seed, kill_epoch, augmentation = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]


class Kill(keras.callbacks.Callback):
    # A kill in the middle of epoch `kill_epoch` (after 3 of its 5 steps).
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == kill_epoch and batch == 2:
            sys.exit(3)


kps.training.pretrain(
    output_dir, dataset="fashion_mnist", data_dir=data_dir, method="pid",
    backbone="small_convnet", backbone_options={"widths": [4, 8]}, epochs=3, batch_size=16,
    optimizer="lars", warmup_epochs=1, projector_dims=(16, 8), pid_warmup_epochs=1,
    pid_transition_epochs=1, seed=seed,
    train_subset=80, probe_subset=32, knn_every=0, monitor_size=0, export=False,
    verbose=0, augmentation=augmentation, extra_callbacks=[Kill()],
)
"""


def _run(output_dir, data_dir, seed, kill_epoch=-1, augmentation="host"):
    arguments = [str(output_dir), data_dir, str(seed), str(kill_epoch), augmentation]
    result = subprocess.run(
        [sys.executable, "-c", RUN, *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    return result


def _run_in_pairs(*runs):
    """`_run(*arguments)` for each tuple of `runs`, two processes at a time, in order."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda arguments: _run(*arguments), runs))


def _losses(output_dir):
    with open(os.path.join(output_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    return [int(r["epoch"]) for r in rows], [float(r["loss"]) for r in rows]


def _weights(output_dir):
    model = keras.saving.load_model(os.path.join(output_dir, "model.keras"))
    return model.get_weights()


# Host: views drawn by the tf.data pipeline; device: by the model in its train step.
@pytest.mark.parametrize("augmentation", ["host", "device"])
def test_same_seed_same_run_and_resume_matches_uninterrupted(
    augmentation, tiny_fashion_mnist, tmp_path
):
    first, second, killed, other_seed = (tmp_path / n for n in ("a", "b", "killed", "seed1"))
    # The three complete runs and the killed one (killed in the middle of epoch 1).
    *results, killed_result = _run_in_pairs(
        (first, tiny_fashion_mnist, 0, -1, augmentation),
        (second, tiny_fashion_mnist, 0, -1, augmentation),
        (other_seed, tiny_fashion_mnist, 1, -1, augmentation),
        (killed, tiny_fashion_mnist, 0, 1, augmentation),
    )
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]

    epochs, losses = _losses(first)
    assert epochs == [0, 1, 2]
    # Same seed: the same loss history and weights, to the bit.
    assert _losses(second) == (epochs, losses)
    for a, b in zip(_weights(first), _weights(second)):
        np.testing.assert_array_equal(a, b)
    # Another seed: another run (the seed reaches init, order and augmentation).
    assert _losses(other_seed)[1] != losses

    # Killed in the middle of epoch 1, then the same command again.
    assert killed_result.returncode == 3, killed_result.stderr[-3000:]
    assert _losses(killed) == ([0], losses[:1])
    result = _run(killed, tiny_fashion_mnist, 0, augmentation=augmentation)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed_epochs, resumed_losses = _losses(killed)
    assert resumed_epochs == [0, 1, 2]
    # Epochs 1-2 rerun from the backup with the same data order and
    # augmentation: the same losses and final weights as without the kill.
    np.testing.assert_allclose(resumed_losses, losses, rtol=1e-6)
    for a, b in zip(_weights(killed), _weights(first)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
