"""Two replicas on one global batch give one device's loss, gradients and fit.

TensorFlow: the CPU split into 2 logical devices under `MirroredStrategy`,
synchronised batch norm in training mode. JAX: 2 host devices
(`--xla_force_host_platform_device_count=2`) under
`keras.distribution.DataParallel`. Each backend runs
`programs/replica_equivalence.py` once in a fresh process; the tests read its
report. The single-device reference is the same model, from the same weights,
on the same 16 images, with no strategy at all.

The losses: SSLModel with Barlow Twins and VICReg, PIDModel with PIDLoss, and
PseudoLabelPIDModel with its pseudo-labels ready (heads, supervision and PID
terms all active).
"""

import keras
import pytest
from distribute_subprocess import program_env
from distribute_subprocess import run_program

BACKEND = keras.backend.backend()
pytestmark = pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax"),
    reason="multi-device training needs tf.distribute (TensorFlow) or "
    "keras.distribution (JAX); Keras has no multi-device PyTorch trainer",
)

RELATIVE_TOLERANCE = 1e-5
LOSSES = ("barlow_twins", "vicreg", "pid", "pseudo_label")
PID_LOSSES = ("pid", "pseudo_label")
# 2 conv kernels, 3 batch norms (scale, offset), 2 Dense kernels; the
# pseudo-label heads add q1 and q2 (kernel, bias) and the joint head's two
# Dense layers (kernel, bias).
NUM_TRAINABLE_WEIGHTS = {"barlow_twins": 10, "vicreg": 10, "pid": 10, "pseudo_label": 18}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("replicas") / f"{BACKEND}.json"
    return run_program(
        "replica_equivalence.py",
        out,
        args=("gather,gradients-training,fit,bn-state",),
        env=program_env(BACKEND),
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="gathering is TF-only (JAX is global)")
def test_gather_replicas_concatenates_in_replica_order_idempotently_and_sums(report):
    gather = report["gather"]
    global_batch = [float(i) for i in range(16)]
    assert gather["local"] == [global_batch[:8], global_batch[8:]]
    assert gather["once"] == [global_batch, global_batch]
    # PIDLoss hands its gathered embeddings to its base loss, which gathers again.
    assert gather["twice"] == [global_batch, global_batch]
    assert gather["sum"] == [sum(global_batch), sum(global_batch)]


@pytest.mark.parametrize("loss_name", LOSSES)
def test_two_replicas_split_the_global_batch(report, loss_name):
    result = report["gradients"][f"{loss_name}/training"]
    if BACKEND == "tensorflow":
        assert result["rows_per_replica"] == [8, 8]
    else:
        assert result["input_shards"] == ["(8, 8, 8, 1)", "(8, 8, 8, 1)"]


@pytest.mark.parametrize("loss_name", LOSSES)
def test_loss_on_two_replicas_equals_one_device_global_batch_loss(report, loss_name):
    result = report["gradients"][f"{loss_name}/training"]
    assert result["loss"]["max_rel"] <= RELATIVE_TOLERANCE, result["loss"]


@pytest.mark.parametrize("loss_name", LOSSES)
def test_every_gradient_on_two_replicas_equals_one_device_gradient(report, loss_name):
    result = report["gradients"][f"{loss_name}/training"]
    assert result["num_weights"] == NUM_TRAINABLE_WEIGHTS[loss_name]
    worst = {k: v for k, v in result["per_weight"].items() if v["max_rel"] > RELATIVE_TOLERANCE}
    assert not worst, worst
    assert result["grad_norm_single"] > 1.0  # a real gradient, not zeros


@pytest.mark.parametrize("loss_name", PID_LOSSES)
def test_gradient_ratio_on_two_replicas_equals_one_device_ratio(report, loss_name):
    """`pid_grad_ratio` is the global batch's: squared norms summed over replicas.

    On TF each replica's `PIDLoss.gradient_ratio` and the metric read across
    replicas; on JAX the metric of the global program. Without the sum over
    replicas (each replica's own rows) the pseudo-label ratio is off by 4e-2
    (per replica) and 4e-3 (metric) here, PIDLoss's by 1e-2 and 1.4e-3.
    """
    result = report["gradients"][f"{loss_name}/training"]
    single = result["grad_ratio_single"]
    assert single["metric"] > 1e-3  # the PID terms do pull on the embeddings
    if BACKEND == "tensorflow":
        assert len(result["grad_ratio_replicas"]["direct"]) == 2
        assert single["direct"] == [pytest.approx(single["metric"], rel=1e-6)]
        assert set(result["grad_ratio"]) == {"direct", "metric"}
    else:
        assert set(result["grad_ratio"]) == {"metric"}
    off = {k: v for k, v in result["grad_ratio"].items() if v["max_rel"] > RELATIVE_TOLERANCE}
    assert not off, (off, result["grad_ratio_replicas"], single)


def test_target_images_leave_batch_norm_statistics_unchanged_on_two_replicas(report):
    """Two PID steps that differ only in the target images: same moving statistics.

    The target pass normalises the target images with batch norm in training
    mode (synchronised over the replicas on TF) and must put the moving
    statistics back; the two online views alone move them.
    """
    state = report["bn_state"]
    for name, num_replicas in (("replicas", 2), ("single", 1)):
        run = state[name]
        assert run["num_replicas"] == num_replicas
        # 3 batch norms, each a moving mean and a moving variance.
        assert run["num_statistics"] == 6
        assert run["statistics_target_difference"] == 0.0, (name, run)
        # The statistics did move, and the targets did change the step, so the
        # equality above is not that of untouched or identical runs.
        assert run["statistics_change"] > 1e-2, (name, run)
        assert run["trainable_target_difference"] > 1e-2, (name, run)
    assert state["statistics_replicas_vs_single"]["max_rel"] <= RELATIVE_TOLERANCE


def test_two_replica_fit_history_matches_one_device(report):
    fit = report["fit"]
    assert fit["num_replicas"] == 2
    # What the scope tells model builders: synchronise batch norm on TF only.
    assert fit["synchronized_batch_norm"] == (BACKEND == "tensorflow")
    assert fit["devices_holding_first_kernel"] == 2
    # The weights moved, so matching histories are not trivially equal.
    assert fit["weight_change"] > 1e-2
    compared = fit["history"]
    expected = {"loss", "synergy_term", "redundancy_term", "joint_term", "pid_grad_ratio"}
    assert expected <= set(compared)
    off = {k: v for k, v in compared.items() if v["max_rel"] > 1e-4}
    assert not off, off
    assert fit["weights"]["max_rel"] <= 1e-4, fit["weights"]
