"""The pretraining recipe under a 2-replica MirroredStrategy, pseudo-label target included."""

import keras
import pytest
from distribute_subprocess import program_env
from distribute_subprocess import run_program

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="MirroredStrategy is tf.distribute (TensorFlow backend)",
)


def test_pseudo_label_pretrain_on_two_replicas(tiny_fashion_mnist, tmp_path):
    report = run_program(
        "mirrored_pretrain.py",
        tmp_path / "out.json",
        args=(str(tmp_path), tiny_fashion_mnist),
        env=program_env("tensorflow"),
        timeout=600,
    )
    assert report["num_replicas"] == 2
    assert report["loss_finite"]
    # One k-means refresh per epoch, each over the fixture's 96 training images
    # once (Keras's predict_on_batch returned one copy per replica here).
    refreshes = report["refreshes"]
    assert [r["epoch"] for r in refreshes] == [0, 1]
    for r in refreshes:
        assert 0 <= r["smallest_cluster"] <= r["largest_cluster"] <= 96
