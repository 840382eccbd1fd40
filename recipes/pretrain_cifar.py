"""Self-supervised pretraining: PID, Barlow Twins or VICReg.

Quick run (minutes on a laptop CPU; needs Debian's dataset-fashion-mnist):

    python recipes/pretrain_cifar.py --dataset=fashion_mnist --backbone=small_convnet \
        --epochs=5 --batch_size=256 --optimizer=adamw --projector_dims=512,512 \
        --train_subset=10000 --output_dir=runs/quick

Published recipe (CIFAR-10 from your cifar-10-binary.tar.gz in
<data_dir>/downloads/manual/): the defaults (ResNet-18, 2048-2048-2048
projector, batch 256, LARS, 1000 epochs).

Rerunning the same command after an interruption resumes from the last
finished epoch (see keras_pid_ssl.callbacks.ResumableBackup).
"""

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "dataset",
    "cifar10",
    ["cifar10", "cifar100", "stl10", "fashion_mnist", "image_folder"],
    "Dataset.",
)
flags.DEFINE_string(
    "data_dir", None, "Data folder (tfds data_dir, the idx folder, or the image folder)."
)
flags.DEFINE_enum("method", "pid", ["pid", "barlow_twins", "vicreg"], "SSL method.")
flags.DEFINE_enum(
    "backbone", "resnet18", ["resnet18", "resnet34", "resnet50", "small_convnet"], "Backbone."
)
flags.DEFINE_integer("epochs", 1000, "Training epochs.")
flags.DEFINE_integer("batch_size", 256, "Global batch size (split over replicas).")
flags.DEFINE_enum("optimizer", "lars", ["lars", "sgd", "adamw"], "Optimizer.")
flags.DEFINE_float(
    "lr", None, "Base learning rate per 256 images (scaled by batch/256). Default per optimizer."
)
flags.DEFINE_float("weight_decay", None, "Weight decay. Default per optimizer.")
flags.DEFINE_integer("warmup_epochs", 10, "Learning-rate warm-up epochs.")
flags.DEFINE_list(
    "projector_dims", ["2048", "2048", "2048"], "Projector widths; the last is the embedding."
)


def _is_width(text):
    try:
        return int(text) >= 1
    except ValueError:
        return False


flags.register_validator(
    "projector_dims",
    lambda dims: bool(dims) and all(_is_width(d) for d in dims),
    message="--projector_dims takes comma-separated positive ints, the last being the "
    "embedding width, e.g. --projector_dims=2048,2048,2048",
)
flags.DEFINE_enum("base", "barlow_twins", ["barlow_twins", "vicreg"], "PID: base loss.")
flags.DEFINE_float("invariance_weight", 1.0, "PID: multiplier of the base's invariance term.")
flags.DEFINE_float("w_joint", 0.0, "PID: joint-information weight.")
flags.DEFINE_float("w_red", 0.0, "PID: redundancy weight.")
flags.DEFINE_float("w_syn", 1.0, "PID: synergy weight.")
flags.DEFINE_enum("units", "r2", ["r2", "nats"], "PID: units of the PID terms.")
flags.DEFINE_enum("target_view", "clean", ["clean", "weak"], "PID: target view.")
flags.DEFINE_float(
    "target_momentum",
    None,
    "PID: EMA momentum of the target network "
    "(0: same network; default 0.99 for --pid_target=ema, else 0).",
)
flags.DEFINE_enum(
    "pid_target",
    "clean",
    ["clean", "ema", "pseudo_label"],
    "PID: target: the target view through the same network, through an EMA of it, "
    "or a k-means pseudo-label of the backbone features (docs/spec.md, section 5).",
)
flags.DEFINE_integer(
    "num_clusters",
    None,
    "PID pseudo-label: k-means clusters (default: the number of classes when known, else 100).",
)
flags.DEFINE_integer(
    "recluster_every",
    None,
    "PID pseudo-label: epochs between k-means refreshes (default: 10% of epochs).",
)
flags.DEFINE_integer(
    "pid_warmup_epochs", None, "PID protocol: warm-up epochs (default 10% of epochs)."
)
flags.DEFINE_integer(
    "pid_transition_epochs", None, "PID protocol: transition epochs (default 10%)."
)
flags.DEFINE_string("augment", None, "Augmentation preset (default per dataset).")
flags.DEFINE_integer("image_size", None, "Train at this image size (default: the dataset's).")
flags.DEFINE_enum(
    "mixed_precision", None, ["mixed_float16", "mixed_bfloat16"], "Mixed-precision policy."
)
flags.DEFINE_enum(
    "strategy",
    "none",
    ["none", "mirrored", "multiworker", "tpu", "jax_data_parallel"],
    "Distribution.",
)
flags.DEFINE_string("output_dir", "runs/pretrain", "Output folder (also the resume point).")
flags.DEFINE_integer(
    "seed",
    0,
    "Random seed: weights, data order and augmentation "
    "(epoch k's batches depend on (seed, k) only).",
)
flags.DEFINE_bool(
    "deterministic",
    True,
    "Deterministic ops (TF op determinism; torch deterministic algorithms): "
    "the same --seed repeats the run. --nodeterministic may be faster on GPUs.",
)
flags.DEFINE_bool(
    "allow_config_change",
    False,
    "Resume a run in --output_dir although its stored run_config.json differs from these "
    "flags (the differences are printed).",
)
flags.DEFINE_integer("train_subset", None, "Use only the first N training images.")
flags.DEFINE_integer(
    "probe_subset", 10000, "Images of the online probe's and kNN's train/test subsets."
)
flags.DEFINE_integer("knn_every", 5, "kNN monitor every N epochs (0: off).")


def main(argv):
    del argv
    import json

    import keras_pid_ssl as kps

    summary = kps.training.pretrain(
        output_dir=FLAGS.output_dir,
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        method=FLAGS.method,
        backbone=FLAGS.backbone,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        optimizer=FLAGS.optimizer,
        lr=FLAGS.lr,
        weight_decay=FLAGS.weight_decay,
        warmup_epochs=FLAGS.warmup_epochs,
        projector_dims=tuple(int(d) for d in FLAGS.projector_dims),
        base=FLAGS.base,
        invariance_weight=FLAGS.invariance_weight,
        w_joint=FLAGS.w_joint,
        w_red=FLAGS.w_red,
        w_syn=FLAGS.w_syn,
        units=FLAGS.units,
        target_view=FLAGS.target_view,
        target_momentum=FLAGS.target_momentum,
        pid_target=FLAGS.pid_target,
        num_clusters=FLAGS.num_clusters,
        recluster_every=FLAGS.recluster_every,
        pid_warmup_epochs=FLAGS.pid_warmup_epochs,
        pid_transition_epochs=FLAGS.pid_transition_epochs,
        augment=FLAGS.augment,
        image_size=FLAGS.image_size,
        mixed_precision=FLAGS.mixed_precision,
        strategy=FLAGS.strategy,
        seed=FLAGS.seed,
        deterministic=FLAGS.deterministic,
        train_subset=FLAGS.train_subset,
        probe_subset=FLAGS.probe_subset,
        knn_every=FLAGS.knn_every,
        allow_config_change=FLAGS.allow_config_change,
    )
    print(json.dumps({k: summary[k] for k in ("final_metrics", "export", "wall_time_s")}, indent=2))


if __name__ == "__main__":
    app.run(main)
