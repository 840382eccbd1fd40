"""`PretrainConfig`: every setting of a pretraining run, validated and serialisable.

One object describes a run: `kps.pretrain` and `kps.training.pretrain` build
it from their keyword arguments, the `kps pretrain` command from its flags
(one flag per field, and one per option of the method's loss), and
`summary.json` / `run_config.json` store it (`PretrainConfig.from_dict`
rebuilds it).

The loss's settings are not repeated here: `loss_options` holds the keyword
arguments of the method's loss (`kps.losses.PIDLoss` for `"pid"`,
`BarlowTwinsLoss`, `VICRegLoss`), passed to it unchanged, so each setting's
name and default live in the loss's signature only. `PretrainConfig.loss_class()`
names that class.

Example:

>>> config = PretrainConfig(dataset="fashion_mnist", epochs=5, loss_options={"w_syn": 0.5})
>>> config.resolved().pid_warmup_epochs, config.resolved().warmup_epochs
(1, 1)
>>> PretrainConfig.from_dict(config.to_dict()) == config
True
"""

import dataclasses
import importlib.util
import inspect
import json
import math
import sys
import typing

from keras_pid_ssl.distribute.strategy import STRATEGY_NAMES
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_image_size
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import check_momentum
from keras_pid_ssl.utils.validation import check_non_negative
from keras_pid_ssl.utils.validation import check_positive
from keras_pid_ssl.utils.validation import check_projector_dims

DATASETS = ("cifar10", "cifar100", "stl10", "fashion_mnist", "image_folder", "array")
METHODS = ("pid", "barlow_twins", "vicreg")
OPTIMIZERS = ("lars", "sgd", "adamw")
# PID targets: the target view through the same network ("clean"), through an
# EMA of it ("ema", momentum 0.99 unless given), or a k-means pseudo-label
# (docs/spec.md, section 5).
PID_TARGETS = ("clean", "ema", "pseudo_label")
# Base learning rates per 256 images and weight decays. LARS: solo-learn's
# CIFAR Barlow Twins configuration (lr 0.3, wd 1e-4, eta 0.02).
OPTIMIZER_DEFAULTS = {
    "lars": dict(lr=0.3, weight_decay=1e-4),
    "sgd": dict(lr=0.3, weight_decay=1e-4),
    "adamw": dict(lr=1e-3, weight_decay=1e-4),
}
AUGMENT_FOR_DATASET = {
    "cifar10": "cifar",
    "cifar100": "cifar",
    "stl10": "imagenet",
    "image_folder": "imagenet",
    "array": "imagenet",
    "fashion_mnist": "grayscale",
}
# Fields that may change between the calls of one run: where things are and
# how much is printed or exported. (`data_dir` only for a named dataset: for an
# image folder it is the data.)
RESUME_FREE_FIELDS = ("data_dir", "verbose", "export", "allow_config_change")


def scaled_epochs(epochs, fraction=0.1, cap=None):
    """`fraction` of `epochs`, rounded half up, leaving at least one other epoch.

    The default length of the learning-rate warm-up (capped at 10) and of
    each PID protocol stage, so that every `epochs >= 1` has valid defaults:

    >>> [scaled_epochs(e) for e in (1, 2, 5, 10, 100, 1000)]
    [0, 0, 1, 1, 10, 100]
    """
    count = math.floor(fraction * epochs + 0.5)
    count = min(count, (epochs - 1) // 2)
    return count if cap is None else min(count, cap)


def _field(default, help, **kwargs):
    if isinstance(default, (dict, list)):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"help": help}
        )
    return dataclasses.field(default=default, metadata={"help": help, **kwargs})


@dataclasses.dataclass
class PretrainConfig:
    """The settings of one pretraining run (see the module docstring).

    `None` means "the default for this run" (per optimizer, per dataset, or
    scaled with `epochs`); `resolved()` fills those in, and `summary.json`
    stores the resolved configuration.
    """

    # Data
    dataset: str | None = _field("cifar10", "Dataset name, 'image_folder' (data_dir) or 'array'.")
    data_dir: str | None = _field(None, "Data folder: tfds data_dir, idx folder or image folder.")
    train_subset: int | None = _field(None, "Use only the first N training images.")
    image_size: int | None = _field(None, "Train at this image size (default: the data's).")
    augment: str | None = _field(
        None,
        "Augmentation preset: cifar, imagenet, grayscale (default per data; grayscale for "
        "one-channel arrays).",
    )
    augmentation: str = _field(
        "auto",
        "Where views are drawn: host (tf.data, CPU), device (inside the train step, on the "
        "accelerator; needs no TensorFlow), auto (device when TensorFlow is not installed).",
    )
    # Model
    method: str | None = _field("pid", "SSL method: pid, barlow_twins or vicreg.")
    backbone: str | None = _field(
        "resnet18",
        "Backbone: resnet18/34/50, small_convnet, a keras.applications name (e.g. "
        "MobileNetV3Small), 'keras_hub:<local preset folder>', or 'custom' (a keras.Model given "
        "in Python).",
    )
    backbone_weights: str | None = _field(
        None, "keras.applications / keras_hub: a local weights file."
    )
    backbone_options: dict = _field(
        {}, 'More arguments of the backbone\'s constructor, e.g. {"widths": [16, 32]}.'
    )
    projector_dims: tuple = _field(
        (2048, 2048, 2048), "Projector widths; the last is the embedding."
    )
    loss_options: dict = _field(
        {}, "Keyword arguments of the method's loss (PIDLoss, BarlowTwinsLoss or VICRegLoss)."
    )
    base_options: dict = _field(
        {}, "PID: keyword arguments of the base loss (e.g. lambda_offdiag)."
    )
    target_view: str | None = _field("clean", "PID: target view, clean or weak.")
    pid_target: str | None = _field("clean", "PID target: clean, ema or pseudo_label.")
    target_momentum: float | None = _field(None, "PID: EMA momentum (default 0.99 if ema, else 0).")
    num_clusters: int | None = _field(None, "PID pseudo_label: k-means k (default classes or 100).")
    recluster_every: int | None = _field(None, "PID pseudo_label: refresh period in epochs (10%).")
    # Schedule
    epochs: int = _field(100, "Training epochs.")
    batch_size: int = _field(256, "Global batch size (split over replicas).")
    optimizer: str | None = _field("lars", "Optimizer: lars, sgd or adamw.")
    lr: float | None = _field(None, "Base learning rate per 256 images (default per optimizer).")
    weight_decay: float | None = _field(None, "Weight decay (default per optimizer).")
    warmup_epochs: int | None = _field(None, "LR warm-up epochs (default 10% of epochs, <= 10).")
    pid_warmup_epochs: int | None = _field(None, "PID: warm-up epochs (default 10%).")
    pid_transition_epochs: int | None = _field(None, "PID: transition epochs (default 10%).")
    # Runtime
    mixed_precision: str | None = _field(None, "Mixed precision: mixed_float16 or mixed_bfloat16.")
    strategy: str | None = _field(
        "none", "Distribution: none, mirrored, multiworker, tpu or jax_data_parallel."
    )
    seed: int = _field(0, "Seed of weights, data order and augmentation.")
    deterministic: bool = _field(True, "Deterministic ops: the same seed repeats the run.")
    # Monitoring and output
    probe_subset: int = _field(10000, "Images of the online probe's and kNN's subsets.")
    probe_every: int = _field(1, "Online linear probe every N epochs.")
    knn_every: int = _field(5, "kNN monitor every N epochs (0: off).")
    monitor_size: int = _field(1024, "PID monitor: images (0: off).")
    monitor_projection_dim: int = _field(16, "PID monitor: random projection width.")
    export: bool | None = _field(
        None,
        "Export the backbone as a TF SavedModel too (needs TensorFlow; default: when "
        "TensorFlow is installed). backbone.keras is always written.",
    )
    verbose: int = _field(1, "0 silent, 1 progress bar, 2 one line per epoch.")
    allow_config_change: bool = _field(
        False, "Resume a run whose stored configuration differs (the differences are printed)."
    )

    def __post_init__(self):
        self.projector_dims = tuple(self.projector_dims)
        self.loss_options = dict(self.loss_options or {})
        self.base_options = dict(self.base_options or {})
        self.backbone_options = dict(self.backbone_options or {})
        self.validate()

    # Construction ------------------------------------------------------------

    @classmethod
    def field_names(cls):
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, **options):
        """A config from keyword arguments: fields, or options of the method's loss.

        An argument that is not a field but a parameter of the method's loss
        (e.g. `w_syn=0.5` for `method="pid"`) joins `loss_options`.
        """
        fields = {k: options.pop(k) for k in list(options) if k in cls.field_names()}
        loss_class = cls.loss_class_of(fields.get("method", "pid"))
        loss_parameters = _parameters(loss_class)
        unknown = [k for k in options if k not in loss_parameters]
        if unknown:
            raise TypeError(
                f"Unknown pretraining option(s) {sorted(unknown)} for method "
                f"{fields.get('method', 'pid')!r}. Options are the fields of "
                f"kps.PretrainConfig and the arguments of {loss_class.__name__}: "
                f"{sorted(loss_parameters)}."
            )
        fields["loss_options"] = {**fields.get("loss_options", {}), **options}
        return cls(**fields)

    @classmethod
    def from_dict(cls, data):
        """The config that `to_dict` (or `summary.json`'s `"config"`) stored."""
        known = {k: v for k, v in data.items() if k in cls.field_names()}
        return cls(**known)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["projector_dims"] = list(self.projector_dims)
        return out

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    # Derived settings ---------------------------------------------------------

    @staticmethod
    def loss_class_of(method):
        from keras_pid_ssl import losses

        check_choice("method", method, METHODS)
        return {
            "pid": losses.PIDLoss,
            "barlow_twins": losses.BarlowTwinsLoss,
            "vicreg": losses.VICRegLoss,
        }[method]

    def loss_class(self):
        return self.loss_class_of(self.method)

    def resume_free_fields(self):
        """The fields a resumed run may change (`RESUME_FREE_FIELDS`, less `data_dir`
        when it names the images: `dataset="image_folder"`)."""
        if self.dataset == "image_folder":
            return tuple(f for f in RESUME_FREE_FIELDS if f != "data_dir")
        return RESUME_FREE_FIELDS

    def resolved(self):
        """This config with every `None` default filled in for its epochs and data."""
        return self.replace(**self._defaults())

    def _defaults(self):
        optimizer = OPTIMIZER_DEFAULTS[self.optimizer]
        loss_defaults = {
            name: value
            for name, value in _parameters(self.loss_class()).items()
            if value is None or isinstance(value, (bool, int, float, str))
        }
        tensorflow = tensorflow_installed()
        defaults = dict(
            augmentation=(
                ("host" if tensorflow else "device")
                if self.augmentation == "auto"
                else self.augmentation
            ),
            export=_default(self.export, tensorflow),
            augment=self.augment or AUGMENT_FOR_DATASET[self.dataset],
            lr=_default(self.lr, optimizer["lr"]),
            weight_decay=_default(self.weight_decay, optimizer["weight_decay"]),
            warmup_epochs=_default(self.warmup_epochs, scaled_epochs(self.epochs, cap=10)),
            # Every loss argument, the loss's defaults filled in.
            loss_options={**loss_defaults, **self.loss_options},
        )
        if self.method == "pid":
            defaults.update(
                pid_warmup_epochs=_default(self.pid_warmup_epochs, scaled_epochs(self.epochs)),
                pid_transition_epochs=_default(
                    self.pid_transition_epochs, scaled_epochs(self.epochs)
                ),
                target_momentum=_default(
                    self.target_momentum, 0.99 if self.pid_target == "ema" else 0.0
                ),
            )
        return defaults

    # Validation --------------------------------------------------------------

    def validate(self):
        """`ValueError`s naming the field (= the command's flag) and what it accepts."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("method", self.method, METHODS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("pid_target", self.pid_target, PID_TARGETS)
        check_choice("target_view", self.target_view, ("clean", "weak"))
        check_choice("augmentation", self.augmentation, ("auto", "host", "device"))
        check_choice("strategy", self.strategy, STRATEGY_NAMES)
        if self.export is not None and not isinstance(self.export, bool):
            raise ValueError(
                f"`export` must be True, False or None (when TensorFlow is installed). "
                f"Received: export={self.export!r}"
            )
        check_choice(
            "mixed_precision", self.mixed_precision, (None, "mixed_float16", "mixed_bfloat16")
        )
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError(
                "`backbone` must be a name (see `PretrainConfig`'s help); pass a keras.Model to "
                f"kps.pretrain instead. Received: backbone={self.backbone!r}"
            )
        if self.backbone == "custom" and self.backbone_options:
            raise ValueError(
                "`backbone_options` configure a backbone built by name; a custom keras.Model "
                f"is built already. Received: backbone_options={self.backbone_options!r}"
            )
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 2)
        if self.lr is not None:
            check_positive("lr", self.lr)
        if self.weight_decay is not None:
            check_non_negative("weight_decay", self.weight_decay)
        check_int("warmup_epochs", self.warmup_epochs, 0, self.epochs, allow_none=True)
        check_projector_dims(self.projector_dims)
        if self.image_size is not None:
            check_image_size("image_size", self.image_size)
        if self.target_momentum is not None:
            check_momentum("target_momentum", self.target_momentum)
        for name in ("pid_warmup_epochs", "pid_transition_epochs"):
            check_int(name, getattr(self, name), 0, self.epochs, allow_none=True)
        check_int("seed", self.seed, 0)
        check_int("train_subset", self.train_subset, self.batch_size, allow_none=True)
        check_int("probe_subset", self.probe_subset, 2)
        check_int("probe_every", self.probe_every, 1)
        check_int("knn_every", self.knn_every, 0)
        if self.monitor_size != 0:
            check_int("monitor_size", self.monitor_size, 2)
        check_int("monitor_projection_dim", self.monitor_projection_dim, 1)
        check_int("verbose", self.verbose, 0, 2)
        self._validate_method_options()

    def _validate_method_options(self):
        self._check_json_options()
        loss_parameters = _parameters(self.loss_class())
        unknown = sorted(set(self.loss_options) - set(loss_parameters))
        if unknown:
            raise ValueError(
                f"`loss_options` {unknown} are not arguments of {self.loss_class().__name__} "
                f"(method={self.method!r}). Its arguments: {sorted(loss_parameters)}."
            )
        if self.method != "pid":
            self._refuse_pid_settings()
        else:
            self._check_pid_settings(loss_parameters)

    def _check_json_options(self):
        for name in ("loss_options", "base_options", "backbone_options"):
            try:
                json.dumps(getattr(self, name))
            except TypeError as error:
                raise ValueError(
                    f"`{name}` must hold JSON values (numbers, strings, lists, dicts) so that the "
                    f"run's configuration can be stored and compared on resume ({error}). Name "
                    "a base loss by string (base='vicreg') and set it with `base_options`."
                ) from None

    def _refuse_pid_settings(self):
        pid_only = {
            "base_options": self.base_options,
            "pid_target": self.pid_target != "clean",
            "target_momentum": self.target_momentum,
            "pid_warmup_epochs": self.pid_warmup_epochs,
            "pid_transition_epochs": self.pid_transition_epochs,
            "num_clusters": self.num_clusters,
            "recluster_every": self.recluster_every,
        }
        given = [name for name, value in pid_only.items() if value not in (None, {}, False)]
        if given:
            received = ", ".join(f"{name}={getattr(self, name)!r}" for name in given)
            raise ValueError(
                f"{given} are PID settings; method={self.method!r} has no PID target. "
                f"Leave them unset, or use method='pid'. Received: {received}"
            )

    def _check_pid_settings(self, loss_parameters):
        base = self.loss_options.get("base", loss_parameters.get("base"))
        base_parameters = _parameters(self.loss_class_of(base)) if base in METHODS else {}
        unknown = sorted(set(self.base_options) - set(base_parameters))
        if unknown:
            raise ValueError(
                f"`base_options` {unknown} are not arguments of the base loss {base!r}. "
                f"Its arguments: {sorted(base_parameters)}."
            )
        resolved = self._defaults()
        warm, transition = resolved["pid_warmup_epochs"], resolved["pid_transition_epochs"]
        if warm + transition >= self.epochs:
            raise ValueError(
                "`pid_warmup_epochs` + `pid_transition_epochs` must be less than `epochs` "
                f"(the PID stage needs an epoch). Received: {warm} + {transition}, "
                f"epochs={self.epochs}"
            )
        if self.pid_target == "pseudo_label" and resolved["target_momentum"] > 0:
            raise ValueError(
                "`pid_target='pseudo_label'` needs no EMA target. Received: "
                f"target_momentum={self.target_momentum}"
            )
        if self.pid_target == "pseudo_label" and resolved["augmentation"] == "device":
            raise ValueError(
                "`pid_target='pseudo_label'` streams its labels through tf.data: it needs "
                "augmentation='host' (and TensorFlow). Received: augmentation="
                f"{self.augmentation!r}"
            )
        check_int("recluster_every", self.recluster_every, 1, allow_none=True)


def field_kind(field):
    """The base type of a `PretrainConfig` field: `bool`, `int`, `float`, `str`, `tuple` or `dict`.

    >>> [field_kind(f) for f in dataclasses.fields(PretrainConfig)][:4]
    [<class 'str'>, <class 'str'>, <class 'int'>, <class 'int'>]
    """
    kinds = [t for t in typing.get_args(field.type) if t is not type(None)] or [field.type]
    return kinds[0]


def tensorflow_installed():
    """Whether TensorFlow can be imported (without importing it)."""
    if "tensorflow" in sys.modules:  # None: made unimportable
        return sys.modules["tensorflow"] is not None
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # e.g. an import hook that refuses it
        return False


def _default(value, default):
    return default if value is None else value


def _parameters(cls):
    """The keyword parameters of `cls.__init__` (without `self` and `**kwargs`)."""
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def loss_parameters(method):
    """The loss options of `method` and their defaults (the loss's own signature).

    >>> loss_parameters("pid")["w_syn"]
    1.0
    """
    return _parameters(PretrainConfig.loss_class_of(method))
