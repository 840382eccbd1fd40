"""Device augmentation under a 2-replica MirroredStrategy (2 logical CPUs)."""

import keras
import pytest
from distribute_subprocess import program_env
from distribute_subprocess import run_program

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="MirroredStrategy is tf.distribute (TensorFlow backend)",
)


def test_pid_model_draws_its_views_on_two_replicas(tmp_path):
    report = run_program(
        "mirrored_device_augment.py",
        tmp_path / "out.json",
        env=program_env("tensorflow"),
        timeout=600,
    )
    assert report["num_replicas"] == 2
    assert report["loss_finite"] and len(report["losses"]) == 2
    # 2 epochs x 2 global steps fitted, then one keyed draw: every replica counts 5.
    assert report["steps_per_replica"] == [5, 5]
    # Each replica keys its draw on (step, replica): different parameters.
    assert report["replicas_draw_different_views"]
    assert report["views_in_unit_interval"]
