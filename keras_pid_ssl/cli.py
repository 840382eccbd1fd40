"""`kps`: the command line of keras_pid_ssl (installed by pip).

    kps pretrain --data=my_images/ --backbone=small_convnet --epochs=10 --output_dir=runs/mine
    kps linear-eval --backbone_path=runs/mine/backbone.keras --data=my_labelled_images/
    kps finetune --backbone_path=runs/mine/backbone.keras --data=labelled.npz --epochs=30
    kps export --model_path=runs/mine/model.keras --output_dir=runs/mine/exported

`kps pretrain` has one flag per field of `kps.PretrainConfig` (its help is
the field's) and one per argument of the method's loss (`PIDLoss`,
`BarlowTwinsLoss`, `VICRegLoss`); a flag left out keeps the config's or the
loss's own default, so each default is declared once, in the library.
`linear-eval` and `finetune` read a dataset name, a labelled image folder
(`<folder>/<class>/<images>`, or `train/` and `test/` sub-folders) or an
`.npz` file (`x_train, y_train, x_test, y_test`, or `images, labels`); data
without a test split gets a seeded, class-stratified one, and the output says
so. Flags are exact (no abbreviations); an unknown flag is an error naming
the closest ones.

The library is imported only for the command that runs, so `kps --help`
answers at once.
"""

import argparse
import dataclasses
import difflib
import importlib.util
import inspect
import json
import os
import re
import sys
import typing

COMMANDS = {
    "pretrain": "Pretrain a backbone on unlabelled images (kps.pretrain).",
    "linear-eval": "Linear evaluation of a backbone on labelled data (frozen features).",
    "finetune": "Fine-tune a backbone with a linear head on labelled data.",
    "export": "Export a .keras SSL model or backbone as a TF SavedModel or ONNX file.",
}
# The loss classes whose arguments `kps pretrain` takes, by method.
LOSS_CLASSES = {"pid": "PIDLoss", "barlow_twins": "BarlowTwinsLoss", "vicreg": "VICRegLoss"}
# Arguments of `kps.pretrain` itself, not fields of `PretrainConfig`.
PRETRAIN_ARGUMENTS = ("data", "output_dir")
# The final metrics `kps pretrain` prints (all of them are in history.csv and TensorBoard).
SUMMARY_METRICS = (
    "loss",
    "probe_accuracy",
    "knn_accuracy",
    "synergy",
    "redundancy",
    "monitor_synergy",
    "monitor_redundancy",
)
# `kps finetune`'s output folder when --output_dir is left out (as recipes/finetune.py).
FINETUNE_OUTPUT = "runs/finetune"
TENSORFLOW_EXTRA = 'pip install "keras-pid-ssl[tensorflow]" (or "[tensorflow-cuda]")'
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


# Flag values ------------------------------------------------------------------


def parse_bool(text):
    """`"true"`/`"false"` (also 1/0, yes/no, on/off) as a bool."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional(parse):
    """`parse`, with `none` (any case) meaning `None`: the "default for this run"."""

    def parse_optional(text):
        return None if text.strip().lower() == "none" else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")
    return parse_optional


def parse_literal(text):
    """A number, `true`/`false`, `none`, or else the text itself."""
    lowered = text.strip().lower()
    if lowered == "none":
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def parse_int_list(text):
    """A comma-separated list of ints, e.g. `512,512` -> `(512, 512)`."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 512,512, got {text!r}"
        ) from None


def parse_json_object(text):
    """A JSON object, e.g. `{"lambda_offdiag": 0.01}`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(
            f'expected a JSON object such as {{"lambda_offdiag": 0.01}}, got {text!r} ({error})'
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _parser_of_type(hint):
    """The flag parser and metavar of a dataclass field's type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = len(args) < len(typing.get_args(hint))
    base = args[0] if optional and len(args) == 1 else hint
    if base is bool:
        return parse_bool, "true|false"
    if base is tuple or typing.get_origin(base) is tuple:
        return parse_int_list, "N,N,..."
    if base is dict or typing.get_origin(base) is dict:
        return parse_json_object, "JSON"
    parse, metavar = {int: (int, "INT"), float: (float, "FLOAT"), str: (str, "TEXT")}.get(
        base, (parse_literal, "VALUE")
    )
    return (_optional(parse), metavar) if optional else (parse, metavar)


def _help(text):
    """`text` for argparse, which reads `%` as a format character."""
    return text.replace("%", "%%")


def _add_bool_flag(group, name, help_text):
    """`--name`, `--name=true|false` and `--no-name`."""
    group.add_argument(
        f"--{name}",
        nargs="?",
        const=True,
        type=parse_bool,
        default=argparse.SUPPRESS,
        metavar="true|false",
        help=_help(help_text),
    )
    group.add_argument(
        f"--no-{name}",
        dest=name,
        action="store_false",
        default=argparse.SUPPRESS,
        help=f"Same as --{name}=false.",
    )


# Parsers ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """A parser of exact flags: no abbreviations (`--epoch` is not `--epochs`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        """Exits with status 2 and the message (`--help` lists the flags; the usage
        line of `kps pretrain` alone is 30 lines)."""
        self.exit(2, f"{self.prog}: error: {message}\nSee `{self.prog} --help`.\n")


def build_parser(command=None):
    """The `kps` parser and its command parsers, `(parser, {command: parser})`.

    Only `command`'s flags are built (all commands' when `None`): building
    them imports the library (the config and the losses), so `kps --help`
    builds none.
    """
    parser = _Parser(
        prog="kps",
        description="keras_pid_ssl: self-supervised pretraining (PID, Barlow Twins, VICReg), "
        "evaluation and export. `kps <command> --help` lists a command's flags.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    commands = {}
    builders = {
        "pretrain": _pretrain_flags,
        "linear-eval": _linear_eval_flags,
        "finetune": _finetune_flags,
        "export": _export_flags,
    }
    for name, description in COMMANDS.items():
        aliases = [name.replace("-", "_")] if "-" in name else []
        sub = subparsers.add_parser(
            name, aliases=aliases, help=description, description=description
        )
        if command is None or command in (name, *aliases):
            builders[name](sub)
        commands.update({n: sub for n in (name, *aliases)})
    return parser, commands


def _data_flag(parser, help_text):
    parser.add_argument(
        "--data",
        "--dataset",
        dest="data",
        required=True,
        metavar="NAME|FOLDER|FILE.npz",
        help=help_text,
    )


def _pretrain_flags(parser):
    from keras_pid_ssl.config import PretrainConfig

    _data_flag(
        parser,
        "The images: a dataset name (cifar10, cifar100, stl10, fashion_mnist), a folder "
        "of images (folder/<image> or folder/<class>/<image>; classes are ignored) or an .npz "
        "file (its x_train or images array; labels are ignored).",
    )
    parser.add_argument(
        "--output_dir",
        default=argparse.SUPPRESS,
        help="The run's folder (default: kps.pretrain's, runs/pretrain).",
    )
    group = parser.add_argument_group("run configuration (fields of kps.PretrainConfig)")
    hints = typing.get_type_hints(PretrainConfig)
    for field in dataclasses.fields(PretrainConfig):
        if field.name == "dataset":  # --data (alias --dataset) sets it
            continue
        help_text = field.metadata.get("help", "")
        default = _field_default(field)
        if default not in (None, {}, ()):
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" (default: {json.dumps(shown) if isinstance(shown, dict) else shown})"
        parse, metavar = _parser_of_type(hints[field.name])
        if parse is parse_bool:
            _add_bool_flag(group, field.name, help_text)
            continue
        group.add_argument(
            f"--{field.name}",
            type=parse,
            metavar=metavar,
            default=argparse.SUPPRESS,
            help=_help(help_text),
        )
    _loss_flags(parser, set(PretrainConfig.field_names()))


def _field_default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def loss_flag_defaults():
    """`{argument: {method: default}}` over the losses of every method."""
    from keras_pid_ssl.config import loss_parameters

    table = {}
    for method in LOSS_CLASSES:
        for name, default in loss_parameters(method).items():
            table.setdefault(name, {})[method] = default
    return table


def _loss_flags(parser, field_names):
    from keras_pid_ssl import losses

    group = parser.add_argument_group(
        "loss options (arguments of the method's loss, "
        f"{', '.join(LOSS_CLASSES.values())}; unset: the loss's own default)"
    )
    docs = {
        method: _documented_arguments(getattr(losses, cls)) for method, cls in LOSS_CLASSES.items()
    }
    for name, defaults in sorted(loss_flag_defaults().items()):
        if name in field_names:
            continue  # a field of the config: its flag exists
        described = next((docs[m][name] for m in defaults if name in docs[m]), "")
        methods = ", ".join(f"{m} {defaults[m]!r}" for m in defaults)
        # The type all its defaults share (`None` or a mix: a number, true/false or text).
        kinds = {type(v) for v in defaults.values()}
        parse, metavar = {float: (float, "FLOAT"), int: (int, "INT"), str: (str, "TEXT")}.get(
            kinds.pop(), (parse_literal, "VALUE")
        )
        parse, metavar = (parse, metavar) if not kinds else (parse_literal, "VALUE")
        described = described.replace("`", "")
        group.add_argument(
            f"--{name}",
            type=parse,
            metavar=metavar,
            default=argparse.SUPPRESS,
            help=_help(f"{described} Default per method: {methods}.".strip()),
        )


def _documented_arguments(cls):
    """`{argument: its Args: text}` of a class docstring, on one line each."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)+)", doc, re.MULTILINE)
    if not match:
        return {}
    out, name = {}, None
    for line in match.group(1).splitlines():
        entry = re.match(r"^ {4}(\w+): ?(.*)$", line)
        if entry:
            name = entry.group(1)
            out[name] = entry.group(2).strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
    return out


def _add_flags(parser, function, flags):
    """One flag per `(name, type, help)`, its default (shown) that of `function`'s
    argument: a flag left out keeps the library's default."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    for name, parse, help_text in flags:
        if defaults.get(name) is not None:
            help_text += f" (default: {defaults[name]})"
        options = {"choices": parse} if isinstance(parse, list) else {"type": parse}
        parser.add_argument(
            f"--{name}", default=argparse.SUPPRESS, help=_help(help_text), **options
        )


def _evaluation_flags(parser, function, backbone_help, output_help, flags):
    parser.add_argument("--backbone_path", required=True, help=backbone_help)
    _data_flag(
        parser,
        "The labelled data: a dataset name (cifar10, cifar100, stl10, fashion_mnist; "
        "--data_dir holds its files), a labelled image folder (folder/<class>/<images>, or "
        "folder/train/<class>/... and folder/test/<class>/...), or an .npz file holding "
        "x_train, y_train, x_test, y_test (the keras.datasets convention) or images, labels. "
        "Data without a test split gets a seeded, class-stratified one (--test_fraction).",
    )
    data_flags = [
        ("data_dir", str, "The folder of a named dataset's files (see kps.data.load)."),
        ("output_dir", str, output_help),
        (
            "resize_method",
            ["pad", "resize"],
            "How images reach the backbone's input size: zero padding or bilinear resizing "
            "(default: pad for fashion_mnist, resize otherwise).",
        ),
        (
            "class_names",
            str,
            "Image folders: a class_names.json (class names indexed by label) to label every "
            "split with (default: the one in the output folder, else the folder's classes).",
        ),
        (
            "test_fraction",
            float,
            "Data without a test split: the share of each class held out for testing.",
        ),
        ("train_subset", int, "Use only the first N training images."),
        ("test_subset", int, "Use only the first N test images."),
    ]
    _add_flags(parser, function, data_flags + flags)


def _linear_eval_flags(parser):
    from keras_pid_ssl import evaluation

    _evaluation_flags(
        parser,
        evaluation.linear_eval,
        "The backbone: a .keras file (backbone.keras or model.keras of a run) or an exported "
        "SavedModel folder.",
        "Where to write linear_eval.json (default: next to the backbone).",
        [
            ("regularization", float, "Inverse L2 strength C of the logistic regression."),
            ("max_iter", int, "L-BFGS iterations."),
            ("seed", int, "Seed of a carved test split."),
        ],
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        default=argparse.SUPPRESS,
        help="Also score the floors a pretrained backbone must beat, on the same split: "
        "logistic regression on the raw pixels, and the same architecture with random weights.",
    )


def _finetune_flags(parser):
    from keras_pid_ssl import evaluation

    _evaluation_flags(
        parser,
        evaluation.finetune,
        "The .keras backbone of a pretraining run (backbone.keras or model.keras).",
        f"Where to write finetune.json and subset_indices.json (default: {FINETUNE_OUTPUT}).",
        [
            ("label_fraction", float, "Share of labelled training images (stratified, seeded)."),
            ("epochs", int, "Epochs."),
            ("batch_size", int, "Batch size."),
            ("lr", float, "Head learning rate (SGD, cosine decay)."),
            ("backbone_lr_scale", float, "Backbone learning rate as a fraction of the head's."),
            ("weight_decay", float, "SGD weight decay."),
            ("seed", int, "Seed of the labelled subset, a carved test split and training."),
            ("verbose", int, "0 silent, 1 progress bar, 2 one line per epoch."),
        ],
    )


def _export_flags(parser):
    parser.add_argument(
        "--model_path",
        required=True,
        help="A .keras file: an SSL model (model.keras; its encoder is exported) or a backbone.",
    )
    parser.add_argument(
        "--output_dir",
        required=True,
        help="tf_saved_model: the SavedModel folder to write; onnx: the folder of backbone.onnx.",
    )
    parser.add_argument(
        "--format",
        choices=["tf_saved_model", "onnx"],
        default="tf_saved_model",
        help="Export format (default: tf_saved_model).",
    )
    parser.add_argument(
        "--input_shape",
        type=parse_int_list,
        default=None,
        metavar="H,W,C",
        help="The images' height,width,channels (default: the model's input).",
    )


# Parsing ----------------------------------------------------------------------


def _command_of(argv):
    """The command named in `argv` (first non-flag argument), or `None`."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
        if arg in ("-h", "--help"):
            return None
    return None


def flags_of(parser):
    """The flags a parser takes, read from its help."""
    return sorted(set(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", parser.format_help())))


def parse_args(argv):
    """`(namespace, subparser)` of a `kps` command line; exits with usage on errors.

    An unknown flag is an error that names the closest flags of the command.
    """
    argv = list(argv)
    command = _command_of(argv)
    parser, commands = build_parser(command)
    args, unknown = parser.parse_known_args(argv)
    sub = commands[args.command]
    if unknown:
        flag = unknown[0].split("=", 1)[0]
        if not flag.startswith("-"):
            sub.error(f"unexpected argument {unknown[0]!r}: every value belongs to a --flag.")
        close = difflib.get_close_matches(flag, flags_of(sub), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        sub.error(f"unknown flag {flag}.{hint}")
    return args, sub


def pretrain_arguments(args):
    """`(data, keyword arguments of kps.pretrain)` from parsed `kps pretrain` flags."""
    values = {k: v for k, v in vars(args).items() if k != "command"}
    return values.pop("data"), values


def pretrain_config(args):
    """The `kps.PretrainConfig` the flags describe (the data's own fields aside)."""
    from keras_pid_ssl.config import PretrainConfig

    _, options = pretrain_arguments(args)
    options.pop("output_dir", None)
    return PretrainConfig.from_options(**options)


def evaluation_arguments(args):
    """`(backbone_path, data, keyword arguments)` of `linear_eval` / `finetune` from
    parsed `kps linear-eval` / `kps finetune` flags."""
    values = {k: v for k, v in vars(args).items() if k not in ("command", "data")}
    if args.command == "finetune":
        values.setdefault("output_dir", FINETUNE_OUTPUT)
    return values.pop("backbone_path"), args.data, values


# Commands ---------------------------------------------------------------------


def _run_pretrain(args, parser):
    import keras_pid_ssl as kps

    try:
        pretrain_config(args)  # flag errors before any data is read
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    data, options = pretrain_arguments(args)
    summary = kps.pretrain(data, **options)
    output_dir = (
        options.get("output_dir")
        or inspect.signature(kps.pretrain).parameters["output_dir"].default
    )
    _print_pretrain_summary(summary, output_dir)


def _print_pretrain_summary(summary, output_dir):
    final = summary.get("final_metrics") or {}
    shown = {
        k: final[k]
        for k in SUMMARY_METRICS
        if isinstance(final.get(k), (int, float)) and not isinstance(final.get(k), bool)
    }
    images, seconds = summary.get("train_images"), summary.get("wall_time_s")
    took = f" in {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
    print(
        f"Pretraining done: {summary.get('epochs_completed')} epoch(s)"
        + (f" on {images} images" if images else "")
        + f"{took}; the run is in {output_dir}."
    )
    if shown:
        print(
            "Final metrics: "
            + ", ".join(f"{k} {_number(v)}" for k, v in shown.items())
            + " (every metric: history.csv, TensorBoard)"
        )
    locations = [
        ("Backbone", os.path.join(output_dir, "backbone.keras")),
        ("SavedModel", summary.get("export")),
        ("TensorBoard", os.path.join(output_dir, "tensorboard")),
        ("History", os.path.join(output_dir, "history.csv")),
        ("Summary", os.path.join(output_dir, "summary.json")),
    ]
    plots = sorted(f for f in os.listdir(output_dir) if f.endswith(".png"))
    locations.insert(2, ("Plots", ", ".join(os.path.join(output_dir, p) for p in plots)))
    for label, path in locations:
        if path and (label == "Plots" or os.path.exists(path)):
            print(f"  {label + ':':<13}{path}")
    print(
        "Next: kps linear-eval "
        f"--backbone_path={os.path.join(output_dir, 'backbone.keras')} --data=<labelled data>"
    )


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _run_evaluation(args, function_name, results_name):
    from keras_pid_ssl import evaluation

    backbone_path, data, options = evaluation_arguments(args)
    function = getattr(evaluation, function_name)
    result = function(backbone_path, data, **options)
    label = "linear eval" if function_name == "linear_eval" else "fine-tune"
    print(
        f"{label} top-1 {100 * result['top1']:.2f}%  top-5 {100 * result['top5']:.2f}%  "
        f"({result['num_classes']} classes; {result['train_images']} training and "
        f"{result['test_images']} test images)"
    )
    floors = result.get("floors")
    if floors:
        random_init = floors["random_init"]
        print(
            f"floors on the same split: raw pixels {100 * floors['raw_pixels']:.2f}%, "
            + (
                f"random-init encoder {100 * random_init:.2f}%"
                if random_init is not None
                else "random-init encoder n/a (a SavedModel backbone: pass the .keras file)"
            )
        )
    print(f"test split: {result['test_split']['description']}")
    folder = evaluation.results_folder(options.get("output_dir"), backbone_path)
    print(f"results: {os.path.join(folder, results_name)}")
    return result


def _run_export(args):
    if not args.model_path.endswith(".keras"):
        raise ValueError(
            f"`model_path` must be a .keras file (model.keras or backbone.keras of a run). "
            f"Received: {args.model_path!r}"
        )
    if args.format == "tf_saved_model":
        require_tensorflow("kps export --format=tf_saved_model")
    from keras_pid_ssl import evaluation
    from keras_pid_ssl.export import export_backbone

    encoder = evaluation.load_backbone(args.model_path)
    path = args.output_dir
    if args.format == "onnx":
        path = os.path.join(args.output_dir, "backbone.onnx")
    export_backbone(encoder, path, format=args.format, input_shape=args.input_shape)
    print(f"exported ({args.format}): {path}")
    return path


def require_tensorflow(what):
    """Raises an `ImportError` naming the extra to install when TensorFlow is missing."""
    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(
            f"{what} writes a TensorFlow SavedModel, which needs TensorFlow on every Keras "
            f"backend, and it is not installed: {TENSORFLOW_EXTRA}. Or use --format=onnx."
        )


def main(argv=None):
    """Runs a `kps` command line (`sys.argv[1:]` by default); returns the exit status."""
    args, parser = parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command.replace("_", "-")
    try:
        if command == "pretrain":
            _run_pretrain(args, parser)
        elif command == "linear-eval":
            _run_evaluation(args, "linear_eval", "linear_eval.json")
        elif command == "finetune":
            _run_evaluation(args, "finetune", "finetune.json")
        else:
            _run_export(args)
    except (ValueError, FileNotFoundError, ImportError) as error:
        # The library's refusals say what is wrong and how to fix it: print them
        # without a traceback.
        print(f"kps {command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
