"""Input pipeline throughput next to the pretraining step's (not a test).

Prints one JSON line: augmented pairs per second of `kps.data.ssl_dataset` for
each augmentation preset at CIFAR size (host `tf.data`), the same for the
device path (the views drawn inside a compiled train step, `SSLModel(...,
augment=preset)`, with a network too small to cost anything), and the pairs
per second of a Barlow Twins training step on ResNet-18
(`kps.backbones.ResNet18` + `kps.heads.Projector`) on the same machine, fed
ready views and fed uint8 images it augments itself, with their ratio: so
one can see whether the input pipeline would starve the model, and what
drawing the views on the device costs the step. Everything is measured one
after the other (on a machine with few cores they would compete for the
same CPUs). Steps are compiled (`jit_compile=True` on TensorFlow and JAX).

Images: CIFAR-10's training split if it is prepared in the tfds data folder
(or its archive is in the manual folder), else Fashion-MNIST padded to 32x32
(from the idx files), else uniform noise; the JSON says which.

Usage:
    KERAS_BACKEND=jax python benchmarks/input_pipeline.py
    python benchmarks/input_pipeline.py --batches 10 --model-steps 3 --batch-size 128
    python benchmarks/input_pipeline.py --presets cifar --batches 5 --device-steps 3
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_pid_ssl as kps  # noqa: E402


def _images(num_images, image_size, data_dir):
    """Real images when available; the source is reported."""
    try:
        images, _ = kps.data.load("cifar10", "train", data_dir=data_dir, image_size=image_size)
        return images[:num_images], "cifar10"
    except (FileNotFoundError, ValueError):
        pass
    try:
        images, _ = kps.data.load("fashion_mnist", "train", image_size=image_size, channels=3)
        return images[:num_images], "fashion_mnist padded to 32x32x3"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        shape = (num_images, image_size, image_size, 3)
        return rng.integers(0, 256, shape, dtype=np.uint8), "uniform noise (no dataset found)"


def pipeline_pairs_per_second(images, preset, batch_size, batches, views):
    dataset = kps.data.ssl_dataset(
        images, views=views, augment=preset, batch_size=batch_size, seed=0
    )
    dataset = dataset.repeat()
    iterator = iter(dataset)
    for _ in range(2):  # warm-up: tracing, autotuning
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


JIT = keras.backend.backend() in ("tensorflow", "jax")


def _timed_steps(model, batch, steps):
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=JIT)
    model.train_on_batch(batch)  # compilation
    model.train_on_batch(batch)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(batch)
    return steps / (time.perf_counter() - start)


def _batch(images, batch_size, augment):
    """Ready float views, or the uint8 images for a model that augments them."""
    batch = images[:batch_size]
    if augment is not None:
        return {"images": batch}
    rng = np.random.default_rng(0)
    return {key: rng.uniform(size=batch.shape).astype("float32") for key in ("view1", "view2")}


def device_pairs_per_second(images, preset, batch_size, steps):
    """Views drawn in a compiled train step whose network costs next to nothing."""
    shape = images.shape[1:]
    encoder = keras.Sequential([keras.Input(shape), keras.layers.GlobalAveragePooling2D()])
    projector = kps.heads.Projector(hidden_dims=(), output_dim=8)
    model = kps.SSLModel(encoder, projector, kps.losses.BarlowTwinsLoss(), augment=preset)
    return batch_size * _timed_steps(model, _batch(images, batch_size, preset), steps)


def model_pairs_per_second(images, batch_size, steps, projector_dims, augment=None):
    image_size = images.shape[1]
    encoder = kps.backbones.ResNet18(input_shape=(image_size, image_size, 3), variant="cifar")
    projector = kps.heads.Projector(hidden_dims=projector_dims[:-1], output_dim=projector_dims[-1])
    model = kps.SSLModel(encoder, projector, kps.losses.BarlowTwinsLoss(), augment=augment)
    return batch_size * _timed_steps(model, _batch(images, batch_size, augment), steps)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", default="cifar,imagenet,grayscale")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20, help="timed pipeline batches per preset")
    parser.add_argument(
        "--device-steps", type=int, default=5, help="timed device-augmentation steps per preset"
    )
    parser.add_argument("--views", default="two", choices=["two", "pid"])
    parser.add_argument(
        "--model-steps", type=int, default=5, help="timed ResNet-18 steps (0: skip)"
    )
    parser.add_argument("--model-batch-size", type=int, default=None, help="default: --batch-size")
    parser.add_argument("--projector-dims", default="2048,2048,2048")
    parser.add_argument("--data-dir", default=None, help="tfds data folder holding CIFAR-10")
    args = parser.parse_args()

    images, source = _images(args.num_images, args.image_size, args.data_dir)
    result = {
        "backend": keras.backend.backend(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "images": source,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "views": args.views,
        "jit_compile": JIT,
        "pipeline_pairs_per_s": {},
        "device_augment_pairs_per_s": {},
    }
    for preset in args.presets.split(","):
        preset_images = images
        if preset == "grayscale":
            preset_images = kps.data.convert_channels(images, 1)
        rate = pipeline_pairs_per_second(
            preset_images, preset, args.batch_size, args.batches, args.views
        )
        result["pipeline_pairs_per_s"][preset] = round(rate, 1)
        if args.device_steps > 0:
            rate = device_pairs_per_second(
                preset_images, preset, args.batch_size, args.device_steps
            )
            result["device_augment_pairs_per_s"][preset] = round(rate, 1)
    if args.model_steps > 0:
        dims = tuple(int(d) for d in args.projector_dims.split(","))
        batch_size = args.model_batch_size or args.batch_size
        plain = model_pairs_per_second(images, batch_size, args.model_steps, dims)
        augmented = model_pairs_per_second(images, batch_size, args.model_steps, dims, "cifar")
        result["resnet18_barlow_twins_step_pairs_per_s"] = round(plain, 1)
        result["resnet18_step_with_device_augment_pairs_per_s"] = round(augmented, 1)
        result["device_augment_step_ratio"] = round(augmented / plain, 3)
        result["model_batch_size"] = batch_size
        result["projector_dims"] = list(dims)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
