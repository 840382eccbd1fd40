"""Without TensorFlow: pretraining with device augmentation, probe, kNN, PID monitor,
resume, and linear evaluation of the `.keras` backbone, on JAX and PyTorch.

Each run is a subprocess in which `import tensorflow` fails (an import hook
refuses it, and nothing named tensorflow is in `sys.modules`), as in an
environment installed without the `tensorflow` extra (CI also runs
`benchmarks/device_check.py --smoke` in a virtualenv that has no TensorFlow).
"""

import json
import os
import subprocess
import sys

import pytest

PROGRAM = """
import json, sys


class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
        return None


import os
if os.environ["KERAS_BACKEND"] == "torch":
    # torch._dynamo scans for optional modules (tensorflow among them) with
    # find_spec when it is imported: let it scan before the hook is in place.
    import torch._dynamo
sys.meta_path.insert(0, NoTensorFlow())
import keras
import keras_pid_ssl as kps

output_dir, data_dir, kill = sys.argv[1], sys.argv[2], sys.argv[3] == "kill"


class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if kill and self.epoch == 1 and batch == 1:
            raise KeyboardInterrupt("simulated kill")


try:
    summary = kps.pretrain(
        "fashion_mnist", backbone="small_convnet", backbone_options={"widths": [4, 8]},
        output_dir=output_dir, data_dir=data_dir,
        epochs=2, batch_size=16, optimizer="adamw", projector_dims=(16, 8), probe_subset=48,
        knn_every=1, monitor_size=32, monitor_projection_dim=4, verbose=0,
        extra_callbacks=[Kill()],
    )
except KeyboardInterrupt:
    print("KILLED")
    sys.exit(0)
result = kps.evaluation.linear_eval(
    output_dir + "/backbone.keras", "fashion_mnist", data_dir=data_dir, output_dir=output_dir
)
print("RESULT " + json.dumps({
    "augmentation": summary["config"]["augmentation"], "export": summary["export"],
    "resumed_from_epoch": summary["resumed_from_epoch"],
    "metrics": sorted(summary["final_metrics"]), "top1": result["top1"],
    "tensorflow": "tensorflow" in sys.modules,
}))
"""


def _run(backend, output_dir, data_dir, kill):
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(output_dir), data_dir, "kill" if kill else "run"],
        env=dict(os.environ, KERAS_BACKEND=backend),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_pretrain_resume_and_linear_eval_without_tensorflow(backend, tiny_fashion_mnist, tmp_path):
    if os.environ.get("KERAS_BACKEND", "tensorflow") != backend:
        # The run is a subprocess on `backend` whatever this suite's backend:
        # once per CI run is enough (tools/test_all_backends.sh runs every suite).
        pytest.skip(f"runs in the KERAS_BACKEND={backend} suite")
    pytest.importorskip(backend)
    run = tmp_path / "run"
    assert "KILLED" in _run(backend, run, tiny_fashion_mnist, kill=True)
    with open(run / "backup" / "latest") as f:
        assert f.read() == "epoch-000001"  # epoch 0 finished, epoch 1 was killed
    out = _run(backend, run, tiny_fashion_mnist, kill=False)
    result = json.loads(out.split("RESULT ", 1)[1])
    assert result["augmentation"] == "device" and result["export"] is None
    assert result["resumed_from_epoch"] == 1 and not result["tensorflow"]
    for name in ("probe_accuracy", "knn_accuracy", "monitor_synergy", "loss"):
        assert name in result["metrics"], name
    # 4 balanced classes told apart by a bright quadrant: far above chance.
    assert result["top1"] >= 0.5
    assert not (run / "tensorboard").exists()
