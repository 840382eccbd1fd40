"""Bad arguments of `kps.training.pretrain` (= the recipe's flags) fail early, by name."""

import os
import subprocess
import sys

import keras
import pytest

import keras_pid_ssl as kps
from conftest import once_per_ci

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BAD = [
    (dict(epochs=0), "`epochs` must be an int >= 1. Received: epochs=0"),
    (dict(batch_size=1), "`batch_size` must be an int >= 2. Received: batch_size=1"),
    (dict(optimizer="adam"), "`optimizer` must be one of \\['adamw', 'lars', 'sgd'\\]"),
    (dict(lr=-0.1), "`lr` must be a finite positive number. Received: lr=-0.1"),
    (dict(weight_decay=float("nan")), "`weight_decay` must be a finite non-negative number"),
    (
        dict(warmup_epochs=5),
        "`warmup_epochs` must be an int in \\[0, 2\\]. Received: warmup_epochs=5",
    ),
    (dict(projector_dims=(16, 0)), "`projector_dims` must be positive ints"),
    (dict(projector_dims=()), "`projector_dims` must be positive ints"),
    (dict(invariance_weight=float("nan")), "`invariance_weight` must be a finite non-negative"),
    (dict(w_syn=-1.0), "`w_syn` must be a finite non-negative number. Received: w_syn=-1.0"),
    (dict(pid_warmup_epochs=-1), "`pid_warmup_epochs` must be an int in \\[0, 2\\]"),
    (dict(pid_transition_epochs=3), "`pid_transition_epochs` must be an int in \\[0, 2\\]"),
    (
        dict(pid_warmup_epochs=1, pid_transition_epochs=1),
        "`pid_warmup_epochs` \\+ `pid_transition_epochs` must be less than `epochs`.*1 \\+ 1, "
        "epochs=2",
    ),
    (dict(mixed_precision="fp8"), "`mixed_precision` must be one of"),
    (dict(seed="a"), "`seed` must be an int >= 0. Received: seed='a'"),
    (dict(train_subset=0), "`train_subset` must be an int >= 16. Received: train_subset=0"),
    (dict(probe_subset=0), "`probe_subset` must be an int >= 2. Received: probe_subset=0"),
    (dict(probe_every=0), "`probe_every` must be an int >= 1. Received: probe_every=0"),
    (dict(knn_every=-1), "`knn_every` must be an int >= 0. Received: knn_every=-1"),
    (dict(monitor_size=1), "`monitor_size` must be an int >= 2. Received: monitor_size=1"),
    (dict(method="simclr"), "`method` must be one of"),
    (dict(pid_target="cluster"), "`pid_target` must be one of"),
    (dict(target_momentum=1.5), "`target_momentum` must be in \\[0, 1\\)"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[next(iter(o)) for o, _ in BAD])
def test_bad_argument_is_named(override, message, tiny_fashion_mnist, tmp_path):
    kwargs = dict(
        dataset="fashion_mnist",
        data_dir=tiny_fashion_mnist,
        method="pid",
        backbone="small_convnet",
        epochs=2,
        batch_size=16,
        warmup_epochs=0,
        projector_dims=(16, 8),
        probe_subset=32,
        knn_every=0,
        monitor_size=0,
        export=False,
        verbose=0,
    )
    kwargs.update(override)
    with pytest.raises(ValueError, match=message):
        kps.training.pretrain(str(tmp_path / "run"), **kwargs)
    # Nothing ran: no history or backup was written.
    assert not os.path.exists(tmp_path / "run" / "history.csv")


@pytest.mark.parametrize(
    "override,message",
    [
        (dict(num_clusters=1), "`num_clusters` must be an int in \\[2, 96\\]"),
        (
            dict(recluster_every=0),
            "`recluster_every` must be an int >= 1. Received: recluster_every=0",
        ),
    ],
)
def test_bad_pseudo_label_argument_is_named(override, message, tiny_fashion_mnist, tmp_path):
    with pytest.raises(ValueError, match=message):
        kps.training.pretrain(
            str(tmp_path / "run"),
            dataset="fashion_mnist",
            data_dir=tiny_fashion_mnist,
            backbone="small_convnet",
            batch_size=16,
            pid_target="pseudo_label",
            projector_dims=(16, 8),
            knn_every=0,
            monitor_size=0,
            export=False,
            verbose=0,
            **override,
        )


def test_finetune_refuses_an_inference_only_savedmodel(tiny_fashion_mnist, tmp_path):
    backbone = kps.backbones.SmallConvNet(input_shape=(12, 12, 1), widths=(4, 8))
    exported = kps.export_backbone(backbone, str(tmp_path / "backbone"))
    with pytest.raises(
        ValueError, match="Fine-tuning needs a trainable backbone: pass the `backbone.keras`"
    ):
        kps.evaluation.finetune(
            exported, "fashion_mnist", str(tmp_path / "ft"), data_dir=tiny_fashion_mnist, verbose=0
        )


def test_train_subset_larger_than_the_dataset(tiny_fashion_mnist, tmp_path):
    with pytest.raises(ValueError, match="`train_subset`=500 exceeds the 96 training images"):
        kps.training.pretrain(
            str(tmp_path / "run"),
            dataset="fashion_mnist",
            data_dir=tiny_fashion_mnist,
            backbone="small_convnet",
            batch_size=16,
            train_subset=500,
            verbose=0,
        )


# The config refuses the batch size before any backend work.
@once_per_ci()
def test_recipe_reports_a_bad_flag_by_name(tiny_fashion_mnist, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "recipes", "pretrain_cifar.py"),
            "--dataset=fashion_mnist",
            f"--data_dir={tiny_fashion_mnist}",
            f"--output_dir={tmp_path / 'run'}",
            "--backbone=small_convnet",
            "--batch_size=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert result.returncode != 0
    assert "`batch_size` must be an int >= 2. Received: batch_size=1" in result.stderr


EVAL_BAD = [
    ("linear_eval", dict(regularization=0.0), "`regularization` must be a finite positive number"),
    ("linear_eval", dict(max_iter=0), "`max_iter` must be an int >= 1. Received: max_iter=0"),
    ("linear_eval", dict(train_subset=0), "`train_subset` must be an int >= 1"),
    ("finetune", dict(epochs=0), "`epochs` must be an int >= 1. Received: epochs=0"),
    ("finetune", dict(batch_size=0), "`batch_size` must be an int >= 1"),
    ("finetune", dict(lr=float("inf")), "`lr` must be a finite positive number"),
    ("finetune", dict(backbone_lr_scale=-1.0), "`backbone_lr_scale` must be a finite non-negative"),
    (
        "finetune",
        dict(test_subset=-3),
        "`test_subset` must be an int >= 1. Received: test_subset=-3",
    ),
    ("finetune", dict(label_fraction=1.5), "`label_fraction` must be in \\(0, 1\\]"),
]


@pytest.mark.parametrize("function,override,message", EVAL_BAD)
def test_bad_evaluation_argument_is_named(
    function, override, message, tiny_fashion_mnist, tmp_path
):
    backbone = kps.backbones.SmallConvNet(input_shape=(12, 12, 1), widths=(4, 8))
    path = str(tmp_path / "backbone.keras")
    backbone.save(path)
    kwargs = dict(data_dir=tiny_fashion_mnist, **override)
    if function == "finetune":
        kwargs.update(output_dir=str(tmp_path / "ft"), verbose=0)
    with pytest.raises(ValueError, match=message):
        getattr(kps.evaluation, function)(path, "fashion_mnist", **kwargs)
