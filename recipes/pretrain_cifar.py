"""The published CIFAR recipe: PID, Barlow Twins or VICReg pretraining.

A thin wrapper of `kps.training.pretrain`: one flag per field of
`kps.PretrainConfig` and per argument of the method's loss (`--w_syn`,
`--invariance_weight`, ...), with the published recipe's defaults (CIFAR-10
from your cifar-10-binary.tar.gz in <data_dir>/downloads/manual/,
ResNet-18, 2048-2048-2048 projector, batch 256, LARS, 1000 epochs: days on
a CPU, hours on a GPU). For other data or backbones use `kps pretrain`.

Quick run (a few minutes on a 2-core CPU; needs Debian's dataset-fashion-mnist):

    python recipes/pretrain_cifar.py --dataset=fashion_mnist \\
        --backbone=small_convnet --epochs=5 --optimizer=adamw \\
        --projector_dims=512,512 --train_subset=10000 --output_dir=runs/quick

Rerunning the same command after an interruption resumes from the last
finished epoch (see keras_pid_ssl.callbacks.ResumableBackup).
"""

import dataclasses
import json

from absl import app
from absl import flags

import keras_pid_ssl.config as config_lib

FLAGS = flags.FLAGS
# The published recipe's values where they differ from PretrainConfig's.
RECIPE_DEFAULTS = {"epochs": 1000}
flags.DEFINE_string("output_dir", "runs/pretrain", "Output folder (also the resume point).")


def _is_width(text):
    try:
        return int(text) >= 1
    except ValueError:
        return False


def _define(field):
    help_text = field.metadata.get("help", "")
    if config_lib.field_kind(field) is dict:  # JSON text, e.g. --loss_options='{"w_syn": 0.5}'
        flags.DEFINE_string(field.name, "{}", help_text + " (JSON)")
        return
    default = RECIPE_DEFAULTS.get(field.name, field.default)
    if field.name == "projector_dims":
        flags.DEFINE_list(field.name, [str(d) for d in default], help_text)
        flags.register_validator(
            "projector_dims",
            lambda dims: bool(dims) and all(_is_width(d) for d in dims),
            message="--projector_dims takes comma-separated positive ints, the last being "
            "the embedding width, e.g. --projector_dims=2048,2048,2048",
        )
    else:
        define = {
            bool: flags.DEFINE_bool,
            int: flags.DEFINE_integer,
            float: flags.DEFINE_float,
        }.get(config_lib.field_kind(field), flags.DEFINE_string)
        define(field.name, default, help_text)


for _field in dataclasses.fields(config_lib.PretrainConfig):
    _define(_field)
# The loss arguments: default None = the loss's own default.
_LOSS_FLAGS = sorted(
    {name for method in config_lib.METHODS for name in config_lib.loss_parameters(method)}
)
for _name in _LOSS_FLAGS:
    flags.DEFINE_string(_name, None, f"Loss argument (see kps.losses; method-specific): {_name}.")


def _value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv):
    del argv
    import keras_pid_ssl as kps

    options = {f.name: FLAGS[f.name].value for f in dataclasses.fields(kps.config.PretrainConfig)}
    options["projector_dims"] = tuple(int(d) for d in FLAGS.projector_dims)
    for field in dataclasses.fields(kps.config.PretrainConfig):
        if kps.config.field_kind(field) is dict:
            options[field.name] = json.loads(FLAGS[field.name].value)
    options.update({n: _value(FLAGS[n].value) for n in _LOSS_FLAGS if FLAGS[n].value is not None})
    summary = kps.training.pretrain(FLAGS.output_dir, **options)
    print(json.dumps({k: summary[k] for k in ("final_metrics", "export", "wall_time_s")}, indent=2))


if __name__ == "__main__":
    app.run(main)
