"""The device check: what an accelerator machine does with keras_pid_ssl, in one script.

    python benchmarks/device_check.py            # on the device machine (minutes)
    python benchmarks/device_check.py --smoke    # the same code paths on a CPU (< 5 min)

For each backend that imports (`--backends`, default jax and torch; the
device machine has no TensorFlow), in a fresh process:

(a) the devices the backend sees;
(b) training pairs/s of Barlow Twins vs PID (ResNet-18 CIFAR stem +
    2048-2048-2048 projector; batch 256 and 512; float32 and
    mixed_bfloat16; `jit_compile=True` on JAX, eager on torch), with the
    views drawn on the device from uint8 batches (`augment="cifar"`);
(c) the device augmentation alone (pairs/s of drawing the views), and the
    host `tf.data` pipeline's pairs/s where TensorFlow is installed;
(d) a short PID vs Barlow Twins run of equal budget on Fashion-MNIST
    (`--fashion_mnist_dir`), device augmentation, then linear top-1.

It writes `results/device_<date>.md` (`--smoke`: `results/device_smoke.md`
unless `--out`) and prints one JSON line per measurement. It needs only the
package, Keras and the backend (plus scikit-learn for (d)): no TensorFlow.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import _common  # noqa: E402

FULL = dict(batches=(256, 512), policies=("float32", "mixed_bfloat16"), steps=20, warmup=5)
SMOKE = dict(batches=(16,), policies=("float32",), steps=2, warmup=1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes on a CPU (< 5 min).")
    parser.add_argument("--backends", default="jax,torch", help="Comma-separated backends.")
    parser.add_argument(
        "--fashion_mnist_dir",
        default="/usr/share/datasets/fashion-mnist",
        help="Folder of the Fashion-MNIST idx files for the quality run (d).",
    )
    parser.add_argument("--quality_epochs", type=int, default=None, help="Epochs of (d).")
    parser.add_argument("--out", default=None, help="Markdown results file.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# The worker: one backend, in its own process -----------------------------------


def devices():
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    if backend == "torch":
        import torch

        found = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return found or ["cpu"]
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices()]


def build_model(method, image_size, dims, backbone="resnet18"):
    import keras_pid_ssl as kps

    encoder = kps.backbones.build(backbone, (image_size, image_size, 3))
    return kps.presets.get(method, encoder, projector_dims=dims, augment="cifar")


def time_steps(model, batch, steps, warmup):
    """Median seconds of `train_on_batch` (it returns NumPy: each step is complete)."""
    for _ in range(warmup):
        model.train_on_batch(batch)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(batch)
        times.append(time.perf_counter() - start)
    return _common.median(times)


def throughput(sizes, smoke):
    import keras
    import numpy as np

    backend = keras.backend.backend()
    image_size, dims = (16, (64, 64)) if smoke else (32, (2048, 2048, 2048))
    rows = []
    for policy in sizes["policies"]:
        keras.mixed_precision.set_global_policy(policy)
        for batch_size in sizes["batches"]:
            images = np.random.default_rng(0).integers(
                0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8
            )
            for method in ("barlow_twins", "pid"):
                keras.utils.clear_session()
                model = build_model(
                    method, image_size, dims, "small_convnet" if smoke else "resnet18"
                )
                model.compile(optimizer="adamw", jit_compile=backend == "jax")
                seconds = time_steps(model, {"images": images}, sizes["steps"], sizes["warmup"])
                rows.append(
                    dict(
                        measure="train_step",
                        method=method,
                        batch=batch_size,
                        policy=policy,
                        pairs_per_s=batch_size / seconds,
                    )
                )
                _common.emit({"benchmark": "device_check", "backend": backend, **rows[-1]})
            rows.append(augmentation_only(model, images, sizes))
    keras.mixed_precision.set_global_policy("float32")
    return rows


def augmentation_only(model, images, sizes):
    """Pairs/s of drawing the views alone (the model's own augmentation)."""
    import keras

    def draw():
        views = model.draw_views({"images": images}, training=False)
        keras.ops.convert_to_numpy(views["view1"])  # wait for the device

    for _ in range(sizes["warmup"]):
        draw()
    times = []
    for _ in range(sizes["steps"]):
        start = time.perf_counter()
        draw()
        times.append(time.perf_counter() - start)
    row = dict(
        measure="device_augmentation",
        batch=len(images),
        policy=keras.mixed_precision.global_policy().name,
        pairs_per_s=len(images) / _common.median(times),
    )
    _common.emit({"benchmark": "device_check", "backend": keras.backend.backend(), **row})
    return row


def quality(args, smoke):
    """Equal-budget PID vs Barlow Twins on Fashion-MNIST, device augmentation, linear top-1."""
    import tempfile

    import keras

    import keras_pid_ssl as kps

    if not os.path.isdir(args.fashion_mnist_dir):
        return [dict(measure="quality", skipped=f"no Fashion-MNIST in {args.fashion_mnist_dir}")]
    images, _ = kps.data.load("fashion_mnist", "train", data_dir=args.fashion_mnist_dir)
    count = 512 if smoke else 20_000
    epochs = args.quality_epochs or (1 if smoke else 10)
    rows = []
    for method in ("barlow_twins", "pid"):
        with tempfile.TemporaryDirectory() as out:
            start = time.time()
            kps.pretrain(
                images[:count],
                backbone="small_convnet",
                method=method,
                output_dir=out,
                epochs=epochs,
                batch_size=64 if smoke else 256,
                optimizer="adamw",
                projector_dims=(64, 64) if smoke else (512, 512),
                augment="grayscale",
                augmentation="device",
                monitor_size=0,
                export=False,
                verbose=0,
            )
            seconds = time.time() - start
            result = kps.evaluation.linear_eval(
                os.path.join(out, "backbone.keras"),
                "fashion_mnist",
                output_dir=out,
                data_dir=args.fashion_mnist_dir,
                train_subset=1000 if smoke else 10_000,
                test_subset=500 if smoke else 10_000,
            )
        rows.append(
            dict(
                measure="quality",
                method=method,
                epochs=epochs,
                images=count,
                pretrain_s=seconds,
                top1=result["top1"],
            )
        )
        _common.emit({"benchmark": "device_check", "backend": keras.backend.backend(), **rows[-1]})
    return rows


def worker(args):
    import keras

    sizes = SMOKE if args.smoke else FULL
    report = {
        "backend": keras.backend.backend(),
        "devices": devices(),
        "machine": _common.machine(),
    }
    report["rows"] = throughput(sizes, args.smoke) + quality(args, args.smoke)
    print("DEVICE_CHECK " + json.dumps(report, default=str), flush=True)


# The driver: one process per backend, then the table ----------------------------


def run_backend(backend, args):
    command = [sys.executable, os.path.abspath(__file__), f"--worker={backend}"]
    command += ["--smoke"] if args.smoke else []
    command += [f"--fashion_mnist_dir={args.fashion_mnist_dir}"]
    if args.quality_epochs:
        command += [f"--quality_epochs={args.quality_epochs}"]
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in result.stdout.splitlines():
        if line.startswith("DEVICE_CHECK "):
            return json.loads(line[len("DEVICE_CHECK ") :])
    return {"backend": backend, "error": (result.stderr or result.stdout)[-2000:]}


def table(reports, args, seconds):
    lines = [
        f"# Device check{' (smoke, CPU)' if args.smoke else ''}",
        "",
        # The backends are --backends' (each in its own process), not KERAS_BACKEND.
        f"Command: `{_common.command_line().split(' ', 1)[1]}`; {seconds:.0f} s in all.",
        "",
    ]
    for report in reports:
        lines.append(f"## {report['backend']}")
        if "error" in report:
            lines += ["", "Failed:", "", "```", report["error"], "```", ""]
            continue
        lines += ["", _common.machine_line(report["machine"]), ""]
        lines += [f"(a) devices: {', '.join(report['devices'])}", ""]
        rows = [
            [
                r["measure"],
                r.get("method", "-"),
                r.get("batch", "-"),
                r.get("policy", "-"),
                f"{r['pairs_per_s']:.0f}" if "pairs_per_s" in r else "-",
                f"{100 * r['top1']:.2f}" if "top1" in r else r.get("skipped", "-"),
            ]
            for r in report["rows"]
        ]
        header = ["measure", "method", "batch", "policy", "pairs/s", "linear top-1 %"]
        lines += [_common.markdown_table(header, rows), ""]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    start = time.time()
    reports = [run_backend(b, args) for b in args.backends.split(",") if b]
    text = table(reports, args, time.time() - start)
    date = datetime.date.today().isoformat()
    name = "device_smoke.md" if args.smoke else f"device_{date}.md"
    out = args.out or os.path.join(_common.RESULTS_DIR, name)
    _common.write_text(out, text)
    print(text)
    failed = [r["backend"] for r in reports if "error" in r]
    if failed:
        print(f"device check failed on: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
