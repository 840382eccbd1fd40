"""`ssl_dataset` and `labeled_dataset`: batched, augmented `tf.data` pipelines.

Both run on the CPU inside `tf.data`, whatever the Keras backend: Keras and
this package's augmentation layers switch to TensorFlow ops there, and
`model.fit` on JAX or PyTorch takes the batches as NumPy arrays. Images are
gathered a batch at a time and augmented as a batch (each image with its own
random parameters), which is far faster in `tf.data` than image by image.
"""

import keras
import numpy as np

from keras_pid_ssl.augment.presets import PRESETS
from keras_pid_ssl.augment.presets import TARGET_VIEWS
from keras_pid_ssl.augment.presets import preset
from keras_pid_ssl.augment.presets import target_pipeline
from keras_pid_ssl.augment.random_flip import RandomFlip
from keras_pid_ssl.augment.random_resized_crop import RandomResizedCrop
from keras_pid_ssl.augment.views import Views
from keras_pid_ssl.augment.views import build_view
from keras_pid_ssl.augment.views import check_tf_data_safe
from keras_pid_ssl.data import keyed_random
from keras_pid_ssl.data.images import check_uint8_images
from keras_pid_ssl.utils.determinism import map_parallel_calls
from keras_pid_ssl.utils.optional import import_tensorflow
from keras_pid_ssl.utils.validation import check_image_size
from keras_pid_ssl.utils.validation import check_int

VIEWS = ("two", "pid", "images")


def _tf():
    return import_tensorflow("kps.data's tf.data pipelines", for_data=True)


def _check_batch_size(batch_size, minimum):
    check_int("batch_size", batch_size, minimum)
    return int(batch_size)


def _check_dataset_images(dataset, with_labels):
    """Checks a `tf.data.Dataset` of uint8 images (or `(image, label)`)."""
    tf = _tf()
    spec = dataset.element_spec
    image_spec = spec[0] if isinstance(spec, tuple) else spec
    if with_labels and not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            "A dataset passed as `images` with `labels=None` must yield (image, label) "
            f"pairs. Received element_spec={spec}"
        )
    if not isinstance(image_spec, tf.TensorSpec):
        raise ValueError(f"The dataset must yield image tensors. Received element_spec={spec}")
    if image_spec.dtype != tf.uint8:
        raise ValueError(
            f"The dataset must yield uint8 images. Received dtype={image_spec.dtype.name}"
        )
    shape = image_spec.shape
    if shape.rank != 3 or shape[-1] not in (1, 3) or None in shape.as_list():
        raise ValueError(
            "The dataset must yield unbatched images of a known shape (height, width, "
            f"1 or 3); call .unbatch() on a batched one. Received shape={shape}"
        )
    return tuple(shape.as_list())


def _batches(images, labels, batch_size, shuffle, drop_remainder, seed, shuffle_buffer, epoch):
    """Epoch-keyed batches `(batch, key)`; `batch` is uint8 images or `(images, labels)`.

    Each pass reads (and advances) `epoch`; its order depends on `(seed,
    epoch)` only and `key` on `(seed, epoch, step)` (see `keyed_random`).
    """
    tf = _tf()
    seed_key = keyed_random.base_key(seed)
    from_dataset = isinstance(images, tf.data.Dataset)
    if from_dataset:
        source = images
        cardinality = int(images.cardinality())
        count = cardinality if cardinality >= 0 else None
    else:
        count = len(images)
        if drop_remainder and batch_size > count:
            raise ValueError(
                f"`batch_size`={batch_size} exceeds the number of images ({count}); with "
                "drop_remainder=True there would be no batch. Use a smaller batch_size."
            )
        # Shuffling indices, then gathering a batch, keeps one copy of the images.
        source = tf.data.Dataset.range(count)

    def one_epoch(epoch_number):
        key = keyed_random.fold_in(seed_key, epoch_number)
        shuffle_key = keyed_random.fold_in(key, -1)
        data = source
        if shuffle and from_dataset:
            data = data.shuffle(
                shuffle_buffer or 10_000, seed=shuffle_key[0], reshuffle_each_iteration=False
            )
        elif shuffle:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(count, dtype=tf.int64), seed=shuffle_key
            )
            data = tf.data.Dataset.from_tensor_slices(order)
        data = data.batch(batch_size, drop_remainder=drop_remainder)
        return data.enumerate().map(lambda step, batch: (batch, keyed_random.fold_in(key, step)))

    start = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64))
    dataset = start.map(lambda _: epoch.assign_add(1) - 1).flat_map(one_epoch)
    if count is not None:
        batches = count // batch_size if drop_remainder else -(-count // batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    if from_dataset:
        return dataset
    images_tensor = tf.convert_to_tensor(images)
    labels_tensor = None if labels is None else tf.convert_to_tensor(labels)

    def gather(index, key):
        if labels_tensor is None:
            return tf.gather(images_tensor, index), key
        return (tf.gather(images_tensor, index), tf.gather(labels_tensor, index)), key

    return dataset.map(gather, num_parallel_calls=map_parallel_calls())


def _to_float(images):
    tf = _tf()
    return tf.cast(images, tf.float32) / 255.0


def _resolve_views(augment, views, image_size, target_view, seed):
    if isinstance(augment, str):
        if augment not in PRESETS:
            raise ValueError(
                f"Unknown augmentation preset {augment!r}. Available presets: "
                f"{', '.join(PRESETS)}; or pass a kps.augment.Views or a Keras layer."
            )
        return preset(
            augment,
            image_size=image_size,
            target=target_view if views == "pid" else None,
            seed=seed,
        )
    if isinstance(augment, Views):
        if views == "pid" and augment.target is None:
            return Views(
                augment.view1, augment.view2, target_pipeline(target_view, image_size, seed=seed)
            )
        return augment
    if isinstance(augment, keras.layers.Layer):
        target = target_pipeline(target_view, image_size, seed=seed) if views == "pid" else None
        return Views(augment, augment, target)
    raise ValueError(
        "`augment` must be a preset name, a kps.augment.Views or a Keras layer "
        f"(applied independently to each view). Received: augment={augment!r}"
    )


def ssl_dataset(
    images,
    views="two",
    augment="cifar",
    batch_size=256,
    image_size=None,
    target_view="clean",
    shuffle=True,
    drop_remainder=True,
    shuffle_buffer=None,
    seed=None,
    pseudo_labels=None,
):
    """A `tf.data.Dataset` of augmented views for `SSLModel` or `PIDModel`.

    Batches are dicts of named views, `{"view1", "view2"}` (`views="two"`)
    or `{"view1", "view2", "target"}` (`views="pid"`), float32 in `[0, 1]`,
    `(batch_size, height, width, channels)`; every image of a batch gets its
    own random augmentation and the two views of an image are augmented
    independently. The images are reshuffled every epoch, augmented on the CPU
    in parallel
    (`num_parallel_calls=AUTOTUNE`; sequentially after
    `kps.training.make_deterministic`) and prefetched. `drop_remainder=True`
    keeps every batch full: the losses use batch statistics.

    With `views="images"` the batches hold the images alone, `{"images":
    uint8 (batch_size, height, width, channels)}`, not augmented (nor
    resized), for a model that draws its views on the device
    (`kps.SSLModel(..., augment="cifar")`, `kps.PIDModel(..., augment=...)`);
    `augment`, `image_size` and `target_view` are then not used. A quarter
    of the bytes of one float view travel to the device per image.

    The order and the augmentation of each pass depend only on `seed` and the
    pass number, which the dataset counts in `dataset.epoch` (an int64
    `tf.Variable`): the same `seed` gives the same batches on every backend.
    Add `kps.callbacks.DataEpoch(dataset)` to `fit` to tie the pass number to
    Keras's epoch, so a run resumed at epoch `k` sees exactly the batches an
    uninterrupted run sees at epoch `k`. Layers with their own random
    generators (e.g. KerasCV's) are seeded as usual, not per epoch.

    Args:
        images: uint8 NumPy array `(num_images, height, width, channels)` (as
            `kps.data.load` returns), or a `tf.data.Dataset` of uint8 images or
            of `(image, label)` pairs (labels are dropped).
        views: `"two"`, `"pid"` (adds the target view) or `"images"` (the
            uint8 images alone, for a model with `augment`).
        augment: a preset name (`"cifar"`, `"imagenet"`, `"grayscale"`), a
            `kps.augment.Views`, or a Keras layer applied to each view.
        batch_size: images per batch (>= 2).
        image_size: output size of the views; default: the images' size.
        target_view: `"clean"` or `"weak"` (PID target view, when the preset
            or `Views` does not bring one).
        shuffle: reshuffle every epoch.
        drop_remainder: drop the last, smaller batch.
        shuffle_buffer: buffer size when `images` is a dataset (default 10,000;
            arrays are shuffled in full).
        seed: integer seed of the shuffle and the augmentation (`None`: a
            random seed).
        pseudo_labels: optional int32 `tf.Variable` of shape `(num_images,)`
            (`kps.callbacks.PseudoLabelRefresh(...).labels`) for
            `kps.models.PseudoLabelPIDModel`. Each batch then carries its
            images' labels, looked up by image index when the batch is made,
            so a refresh of the variable shows in the next epoch without
            rebuilding the dataset. Batches then also hold `"label"`, an
            int32 vector `(batch_size,)`.

    Returns:
        A `tf.data.Dataset` (with the pass counter `dataset.epoch`); pass it
        to `model.fit` on any backend.

    Example:

    ```python
    images, _ = kps.data.load("cifar10", "train")
    dataset = kps.data.ssl_dataset(images, views="pid", augment="cifar", batch_size=256, seed=0)
    model.fit(dataset, epochs=100, callbacks=[kps.callbacks.DataEpoch(dataset)])
    ```
    """
    tf = _tf()
    if views not in VIEWS:
        raise ValueError(f"`views` must be one of {VIEWS}. Received: views={views!r}")
    if target_view not in TARGET_VIEWS:
        raise ValueError(f"`target_view` must be one of {TARGET_VIEWS}. Received: {target_view!r}")
    batch_size = _check_batch_size(batch_size, 2)
    if isinstance(images, tf.data.Dataset):
        shape = _check_dataset_images(images, with_labels=False)
        if isinstance(images.element_spec, tuple):
            images = images.map(lambda image, *rest: image)
    else:
        shape = check_uint8_images(images).shape[1:]
    size = tuple(shape[:2]) if image_size is None else image_size
    if views == "images":
        layers, keys = [], []
    else:
        augmenter = _resolve_views(augment, views, size, target_view, seed)
        check_tf_data_safe(augmenter)
        layers = [augmenter.view1, augmenter.view2]
        layers += [augmenter.target] if views == "pid" else []
        keys = ["view1", "view2"] + (["target"] if views == "pid" else [])

    def make_views(batch, key):
        images_batch, index = batch if pseudo_labels is not None else (batch, None)
        if views == "images":
            outputs = {"images": images_batch}
            if index is not None:
                outputs["label"] = tf.gather(pseudo_labels, index)
            return outputs
        images_batch = _to_float(images_batch)
        outputs = {}
        with keyed_random.keyed_layers(layers, key):
            for name, layer in zip(keys, layers, strict=True):
                build_view(layer, tuple(images_batch.shape))
                outputs[name] = tf.cast(layer(images_batch, training=True), tf.float32)
        if index is not None:
            # Read at every batch: the labels of the variable's current value.
            outputs["label"] = tf.gather(pseudo_labels, index)
        return outputs

    indices = None
    if pseudo_labels is not None:
        count = _check_pseudo_labels(pseudo_labels, images)
        if isinstance(images, tf.data.Dataset):
            images = images.enumerate().map(lambda index, image: (image, index))
        else:
            indices = np.arange(count)
    epoch = keyed_random.epoch_variable()
    dataset = _batches(
        images, indices, batch_size, shuffle, drop_remainder, seed, shuffle_buffer, epoch
    )
    dataset = dataset.map(make_views, num_parallel_calls=map_parallel_calls())
    return _with_epoch(dataset.prefetch(tf.data.AUTOTUNE), epoch)


def _with_epoch(dataset, epoch):
    # The pass counter travels with the dataset for `kps.callbacks.DataEpoch`.
    dataset.epoch = epoch
    return dataset


def _check_pseudo_labels(pseudo_labels, images):
    """Checks an int32 `tf.Variable` of one label per image; returns its length."""
    tf = _tf()
    if (
        not isinstance(pseudo_labels, tf.Variable)
        or pseudo_labels.dtype != tf.int32
        or (pseudo_labels.shape.rank != 1)
    ):
        raise ValueError(
            "`pseudo_labels` must be an int32 tf.Variable of shape (num_images,), e.g. "
            f"kps.callbacks.PseudoLabelRefresh(...).labels. Received: {pseudo_labels!r}"
        )
    count = int(pseudo_labels.shape[0])
    if not isinstance(images, tf.data.Dataset) and len(images) != count:
        raise ValueError(
            f"`pseudo_labels` holds {count} labels but there are {len(images)} images; "
            "it needs one label per image, in the same order."
        )
    return count


def _labeled_augment(augment, image_size, seed):
    if augment is None:
        return None
    if augment == "flip":
        return RandomFlip("horizontal", seed=seed)
    if augment == "crop_flip":
        return keras.layers.Pipeline(
            [
                RandomResizedCrop(image_size, seed=seed),
                RandomFlip("horizontal", seed=seed),
            ]
        )
    if isinstance(augment, keras.layers.Layer):
        return augment
    raise ValueError(
        "`augment` must be None, 'flip', 'crop_flip' or a Keras layer. "
        f"Received: augment={augment!r}"
    )


def labeled_dataset(
    images,
    labels=None,
    batch_size=256,
    augment=None,
    image_size=None,
    shuffle=False,
    drop_remainder=False,
    seed=None,
):
    """A `tf.data.Dataset` of `(images, labels)` batches for probes and evaluation.

    Images come out float32 in `[0, 1]`, resized to `image_size` if given,
    labels int32.

    Args:
        images: uint8 NumPy array `(num_images, height, width, channels)`, or a
            `tf.data.Dataset` of `(uint8 image, label)` pairs (then `labels=None`).
        labels: int array `(num_images,)` of class indices (>= 0).
        batch_size: images per batch.
        augment: `None`, `"flip"`, `"crop_flip"` (random resized crop and flip,
            the linear-evaluation protocol's training views) or a Keras layer.
        image_size: output size (default: the images' size).
        shuffle: reshuffle every epoch (for training a probe).
        drop_remainder: drop the last, smaller batch.
        seed: integer seed of the shuffle and the augmentation; as in
            `ssl_dataset`, each pass depends on `(seed, dataset.epoch)` only.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`, with the pass counter
        `dataset.epoch`.

    Example:

    ```python
    images, labels = kps.data.load("cifar10", "test")
    dataset = kps.data.labeled_dataset(images, labels, batch_size=512)
    ```
    """
    tf = _tf()
    batch_size = _check_batch_size(batch_size, 1)
    if isinstance(images, tf.data.Dataset):
        if labels is not None:
            raise ValueError("With a dataset as `images`, pass labels inside it: (image, label).")
        shape = _check_dataset_images(images, with_labels=True)
    else:
        shape = check_uint8_images(images).shape[1:]
        if labels is None:
            raise ValueError("`labels` is required with an array of images.")
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"`labels` must be ints of shape ({len(images)},). Received: "
                f"shape={labels.shape}, dtype={labels.dtype}"
            )
        if labels.min() < 0:
            raise ValueError(
                "`labels` holds negative values (-1 marks unlabeled images, e.g. STL-10 "
                "'unlabeled'): a labelled dataset needs class indices >= 0."
            )
    size = tuple(shape[:2]) if image_size is None else check_image_size("image_size", image_size)
    layer = _labeled_augment(augment, size, seed)
    if layer is not None:
        check_tf_data_safe(layer)
    resize = keras.layers.Resizing(*size, antialias=True) if size != tuple(shape[:2]) else None

    def prepare(batch, key):
        images_batch, batch_labels = batch
        images_batch = _to_float(images_batch)
        if layer is not None:
            with keyed_random.keyed_layers([layer], key):
                images_batch = layer(images_batch, training=True)
        if resize is not None and tuple(images_batch.shape[1:3]) != size:
            images_batch = resize(images_batch)
        return tf.cast(images_batch, tf.float32), tf.cast(batch_labels, tf.int32)

    epoch = keyed_random.epoch_variable()
    dataset = _batches(images, labels, batch_size, shuffle, drop_remainder, seed, None, epoch)
    dataset = dataset.map(prepare, num_parallel_calls=map_parallel_calls())
    return _with_epoch(dataset.prefetch(tf.data.AUTOTUNE), epoch)
