"""Downstream evaluation of a pretrained backbone: linear evaluation and fine-tuning.

`kps linear-eval` / `kps finetune` and `recipes/linear_eval.py` /
`recipes/finetune.py` call `linear_eval` and `finetune`. A backbone is read
from a `.keras` file (`backbone.keras` of a pretraining run, or a whole
`SSLModel`, whose `.encoder` is used) or from an exported TF SavedModel
folder (`kps.export_backbone`, inference only).

The labelled data is a dataset name, a labelled image folder or an `.npz`
file (`kps.data.load.load_labelled`); data without a test split (a folder of
class sub-folders, an `.npz` of `images` and `labels`) gets a seeded,
class-stratified test split, and the results say so (`test_split`).
"""

import dataclasses
import json
import numbers
import os
import time

import keras
import numpy as np
from keras import ops

from keras_pid_ssl import data as data_lib
from keras_pid_ssl.data import image_folder as image_folder_lib
from keras_pid_ssl.data.load import TEST_FRACTION
from keras_pid_ssl.data.load import labelled_source
from keras_pid_ssl.data.load import load_labelled
from keras_pid_ssl.metrics import top_k_accuracy
from keras_pid_ssl.models.ssl_model import SSLModel
from keras_pid_ssl.utils.validation import check_choice
from keras_pid_ssl.utils.validation import check_int
from keras_pid_ssl.utils.validation import check_labels
from keras_pid_ssl.utils.validation import check_non_negative
from keras_pid_ssl.utils.validation import check_open_unit_interval
from keras_pid_ssl.utils.validation import check_positive


class SavedModelBackbone:
    """Features from an exported SavedModel (its `serve` endpoint), any backend."""

    def __init__(self, path):
        import tensorflow as tf

        self.path = path
        self._module = tf.saved_model.load(path)
        self._serve = self._module.serve
        spec = self._serve.concrete_functions[0].structured_input_signature[0][0]
        self.input_shape = tuple(spec.shape)

    def predict(self, images, batch_size=256, verbose=0):
        out = [
            np.asarray(self._serve(images[i : i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out)


def load_backbone(path):
    """A backbone from a `.keras` file or an exported SavedModel folder.

    Returns a Keras model for `.keras` files (trainable; an `SSLModel` file
    gives its encoder) and a `SavedModelBackbone` (inference only) for a
    SavedModel folder.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise ValueError(
                f"`backbone_path` folder {path!r} holds no saved_model.pb: expected a "
                "SavedModel written by kps.export_backbone, or a .keras file."
            )
        return SavedModelBackbone(path)
    if not path.endswith(".keras") or not os.path.exists(path):
        raise ValueError(
            f"`backbone_path` must be an existing .keras file or SavedModel folder. "
            f"Received: {path!r}"
        )
    model = keras.models.load_model(path)
    return model.encoder if isinstance(model, SSLModel) else model


def _input_shape(backbone):
    shape = backbone.input_shape
    return tuple(shape[1:]) if len(shape) == 4 else tuple(shape)


def load_for_backbone(
    dataset, split, backbone, data_dir=None, subset=None, resize_method=None, class_names=None
):
    """uint8 images (at the backbone's input size and channels) and labels.

    `resize_method` and `class_names` are those of `kps.data.load`.
    """
    height, width, channels = _input_shape(backbone)
    images, labels = data_lib.load(
        dataset,
        split,
        data_dir=data_dir,
        image_size=(height, width),
        channels=channels,
        resize_method=resize_method,
        class_names=class_names,
    )
    if subset:
        images, labels = images[:subset], labels[:subset]
    return images, labels


def extract_features(backbone, images, batch_size=256):
    """Backbone features of uint8 images (scaled to [0, 1]), inference mode."""
    out = []
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size].astype("float32") / 255.0
        out.append(np.asarray(backbone.predict(batch, batch_size=batch_size, verbose=0)))
    return np.concatenate(out).astype("float32")


@dataclasses.dataclass(frozen=True)
class _DataRequest:
    """The labelled-data arguments of `linear_eval` and `finetune` (`seed` draws
    a carved test split of `test_fraction`)."""

    dataset: object
    data_dir: object
    train_subset: object
    test_subset: object
    resize_method: object
    class_names: object
    test_fraction: float
    seed: int

    def check(self):
        """Refusals before any file is read."""
        source, location = labelled_source(self.dataset, self.data_dir)
        check_int("train_subset", self.train_subset, 1, allow_none=True)
        check_int("test_subset", self.test_subset, 1, allow_none=True)
        check_choice("resize_method", self.resize_method, (None, "pad", "resize"))
        check_open_unit_interval("test_fraction", self.test_fraction)
        check_int("seed", self.seed, 0)
        if self.class_names is not None and source != "image_folder":
            raise ValueError(
                f"`class_names` sets the labels of an image folder; {location!r} has fixed "
                f"labels. Received: class_names={self.class_names!r}. Leave it unset."
            )

    def class_map(self, folder):
        """`class_map` of this data, kept in `folder`."""
        return class_map(self.dataset, self.data_dir, folder, self.class_names)

    def load(self, backbone, names_source):
        """Train and test data (`load_labelled`) at the backbone's input size,
        labelled with the class map `names_source`, cut to the subsets."""
        height, width, channels = _input_shape(backbone)
        data = load_labelled(
            self.dataset,
            self.data_dir,
            image_size=(height, width),
            channels=channels,
            resize_method=self.resize_method,
            class_names=names_source,
            test_fraction=self.test_fraction,
            seed=self.seed,
        )
        train, test = (slice(None, n or None) for n in (self.train_subset, self.test_subset))
        data = dataclasses.replace(
            data,
            x_train=data.x_train[train],
            y_train=data.y_train[train],
            x_test=data.x_test[test],
            y_test=data.y_test[test],
        )
        check_labels(f"{data.location} train labels", data.y_train, data.num_classes)
        check_labels(f"{data.location} test labels", data.y_test, data.num_classes)
        return data


def results_folder(output_dir, backbone_path):
    """Where `linear_eval` writes its results: `output_dir`, else the backbone's folder."""
    return output_dir or os.path.dirname(os.path.abspath(os.fspath(backbone_path).rstrip("/")))


def class_map(dataset, data_dir, folder, class_names=None):
    """The class map of an evaluation, built once and kept with its results.

    For an image folder (`dataset="image_folder"` with `data_dir`, or the
    folder's path as `dataset`): `class_names` when given (a list, or the
    path of a `class_names.json`), else the `class_names.json` already in
    `folder` (from an earlier evaluation written there), else the sorted
    class sub-folders of `<data>/train` (or of the folder itself when it
    has no train/test sub-folders). Every split is labelled with it.
    Other data has fixed labels: `None`.

    Returns:
        `(names, source)`: the names indexed by label, and the list or the
        path to pass on as `class_names` (its path names it in errors).
    """
    source, location = labelled_source(dataset, data_dir)
    if source != "image_folder":
        return None, None
    # The layout (train/ and test/, or class folders) is checked by `load_labelled`,
    # after the flat-folder error below.
    split = "train" if os.path.isdir(os.path.join(location, "train")) else None
    if class_names is None:
        saved = os.path.join(folder, image_folder_lib.CLASS_NAMES_FILE)
        if os.path.exists(saved):
            class_names = saved
    if class_names is None:
        names = image_folder_lib.class_names(location, split)
        source = list(names)
    else:
        names, _ = image_folder_lib.resolve_class_names(location, "train", class_names)
        source = class_names
    if not names:
        where = "in `train` and `test`" if split else "(a test split is then carved from it)"
        flat = os.path.join(location, split) if split else location
        raise ValueError(
            f"Image folder {flat} is flat (unlabeled): evaluation needs labels, one sub-folder "
            f"of images per class {where}."
        )
    return names, source


def _full_probabilities(probabilities, classes, num_classes):
    """Scatters the columns of `predict_proba` (one per class *seen* in training,
    `classifier.classes_`) to the columns of their labels, so column `k` is
    label `k` even when the training labels skip a class of the map."""
    full = np.zeros((len(probabilities), num_classes), probabilities.dtype)
    full[:, np.asarray(classes, dtype=np.int64)] = probabilities
    return full


def linear_eval(
    backbone_path,
    dataset,
    output_dir=None,
    data_dir=None,
    train_subset=None,
    test_subset=None,
    regularization=1.0,
    max_iter=1000,
    resize_method=None,
    class_names=None,
    test_fraction=TEST_FRACTION,
    seed=0,
    floors=False,
):
    """Linear evaluation on frozen features: multinomial logistic regression.

    The standard protocol trains a linear layer with SGD for 100 epochs on
    augmented crops. For speed we use the common fast variant (e.g. DINO's
    and SimCLR's "L-BFGS on precomputed features"): features of the
    un-augmented training images are standardised and scikit-learn's
    `LogisticRegression` (L-BFGS, L2 `C=regularization`) is fitted to them;
    top-1 and top-5 accuracy are measured on the test split. Writes
    `linear_eval.json` into `output_dir` (default: next to the backbone),
    and for an image folder the class map `class_names.json` (see
    `class_map`), which later evaluations in that folder reuse.

    Args:
        backbone_path: a `.keras` backbone or an exported SavedModel folder.
        dataset: the labelled data: a dataset name of `kps.data.load`
            (`"image_folder"` with `data_dir`), or the path of a labelled
            image folder or an `.npz` file (`kps.data.load.load_labelled`).
        output_dir: where to write the results (default: next to the backbone).
        data_dir: a named dataset's folder (as for `kps.data.load`).
        train_subset: use only the first N training images.
        test_subset: use only the first N test images.
        regularization: inverse L2 strength `C` of the logistic regression.
        max_iter: L-BFGS iterations.
        resize_method: how images reach the backbone's input size: `"pad"`
            or `"resize"` (default as in `kps.data.load`: pad for
            Fashion-MNIST, resize otherwise).
        class_names: `image_folder` only: the class map to label every split
            with (a list of names indexed by label, or the path of a
            `class_names.json`); see `class_map` for the default.
        test_fraction: the share of each class held out as the test split
            of data that has none (carved, stratified).
        seed: seed of that carved test split (and of the random encoder of
            `floors`).
        floors: also score, with the same classifier and split, the two
            floors a pretrained backbone must beat: the raw pixels, and an
            encoder of the same architecture with random weights (`.keras`
            backbones only).

    Returns:
        A dict with `top1`, `top5`, sizes, `test_split` (given or carved,
        and how) and timings; with `floors`, `floors` = `{"raw_pixels":
        top1, "random_init": top1 or None}`.
    """

    check_positive("regularization", regularization)
    check_int("max_iter", max_iter, 1)
    subsets, split = (train_subset, test_subset), (test_fraction, seed)
    request = _DataRequest(dataset, data_dir, *subsets, resize_method, class_names, *split)
    request.check()
    start = time.time()
    folder = results_folder(output_dir, backbone_path)
    names, names_source = request.class_map(folder)
    backbone = load_backbone(backbone_path)
    data = request.load(backbone, names_source)
    f_train = extract_features(backbone, data.x_train)
    f_test = extract_features(backbone, data.x_test)
    feature_time = time.time() - start
    classifier = dict(
        regularization=regularization, max_iter=max_iter, num_classes=data.num_classes
    )
    probabilities = _logistic_probabilities(f_train, data.y_train, f_test, **classifier)
    result = {
        "backbone_path": os.fspath(backbone_path),
        **_data_record(data),
        **_save_class_map(names, folder),
        "feature_dim": int(f_train.shape[1]),
        "top1": top_k_accuracy(probabilities, data.y_test, 1),
        "top5": top_k_accuracy(probabilities, data.y_test, 5),
        "feature_time_s": feature_time,
    }
    if floors:
        result["floors"] = _floors(backbone, data, seed, classifier)
    result["wall_time_s"] = time.time() - start
    _write_json(result, folder, "linear_eval.json")
    return result


def _logistic_probabilities(f_train, y_train, f_test, regularization, max_iter, num_classes):
    """Test-set class probabilities of a logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(f_train)
    classifier = LogisticRegression(C=regularization, max_iter=max_iter)
    classifier.fit(scaler.transform(f_train), y_train)
    return _full_probabilities(
        classifier.predict_proba(scaler.transform(f_test)), classifier.classes_, num_classes
    )


def _floors(backbone, data, seed, classifier):
    """Top-1 of the raw pixels and of a random-weight copy of `backbone`."""

    def top1(f_train, f_test):
        probabilities = _logistic_probabilities(f_train, data.y_train, f_test, **classifier)
        return top_k_accuracy(probabilities, data.y_test, 1)

    def pixels(x):
        return np.asarray(x, dtype="float32").reshape(len(x), -1)

    out = {"raw_pixels": top1(pixels(data.x_train), pixels(data.x_test)), "random_init": None}
    if isinstance(backbone, keras.Model):
        keras.utils.set_random_seed(seed)
        fresh = keras.models.clone_model(backbone)  # same architecture, new weights
        out["random_init"] = top1(
            extract_features(fresh, data.x_train), extract_features(fresh, data.x_test)
        )
    return out


def _data_record(data):
    """The result entries that say which data, and which split, were evaluated."""
    return {
        "dataset": data.location if data.source == "dataset" else data.source,
        **({} if data.source == "dataset" else {"data_path": data.location}),
        "num_classes": data.num_classes,
        "train_images": int(len(data.x_train)),
        "test_images": int(len(data.x_test)),
        "test_split": data.test_split,
    }


def _save_class_map(names, folder):
    """Writes an image folder's class map next to the results; its entry there."""
    if names is None:
        return {}
    path = os.path.join(folder, image_folder_lib.CLASS_NAMES_FILE)
    image_folder_lib.write_class_names(path, names)
    return {"class_names_path": path}


def _check_label_fraction(fraction):
    if (
        not isinstance(fraction, numbers.Real)
        or isinstance(fraction, bool)
        or not 0 < fraction <= 1
    ):
        raise ValueError(
            "`label_fraction` must be in (0, 1] (the share of labelled training images "
            f"kept). Received: label_fraction={fraction!r}"
        )


def stratified_subset(labels, fraction, seed):
    """Indices of a class-stratified, seeded `fraction` of `labels` (>= 1 per class)."""
    _check_label_fraction(fraction)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen))


@keras.saving.register_keras_serializable(package="keras_pid_ssl")
class GradientScale(keras.layers.Layer):
    """Identity forward; multiplies the gradient flowing back by `scale`.

    Placed between backbone and head, it gives the backbone a learning rate
    `scale` times the head's under SGD (whose update is linear in the
    gradient), the usual "lower backbone learning rate" of fine-tuning.
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x):
        return self.scale * x + ops.stop_gradient((1.0 - self.scale) * x)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def _finetune_classifier(backbone, images, num_classes, backbone_lr_scale):
    """Backbone -> `GradientScale` -> standardisation -> linear head (logits).

    The head sees the features standardised by their mean and standard
    deviation on `images` (the labelled subset) before fine-tuning, as
    linear evaluation standardises them: SSL features have an arbitrary
    scale (std ~0.1 per dimension for SmallConvNet on Fashion-MNIST), at
    which SGD on the raw features barely moves the head (1%-label
    fine-tuning scored 50% where the linear probe scored 79%).
    """
    from sklearn.preprocessing import StandardScaler

    # linear_eval's scaler: a feature constant on the subset keeps scale 1, so
    # where it varies at test time it is not blown up by 1 / epsilon.
    scaler = StandardScaler().fit(extract_features(backbone, images))
    standardize = keras.layers.Normalization(
        mean=scaler.mean_, variance=scaler.scale_**2, name="standardize"
    )
    inputs = keras.Input(shape=_input_shape(backbone))
    features = standardize(GradientScale(backbone_lr_scale)(backbone(inputs)))
    outputs = keras.layers.Dense(num_classes, name="classifier")(features)
    return keras.Model(inputs, outputs)


def finetune(
    backbone_path,
    dataset,
    output_dir,
    data_dir=None,
    label_fraction=1.0,
    epochs=30,
    batch_size=256,
    lr=0.05,
    backbone_lr_scale=0.1,
    weight_decay=5e-4,
    train_subset=None,
    test_subset=None,
    seed=0,
    verbose=1,
    resize_method=None,
    class_names=None,
    test_fraction=TEST_FRACTION,
):
    """Fine-tunes the whole backbone with a linear head (SGD, cosine schedule).

    `label_fraction` (e.g. 0.01 / 0.1, the semi-supervised protocol) keeps a
    class-stratified, seeded subset of the labelled training images, saved to
    `<output_dir>/subset_indices.json` so runs are comparable. The backbone
    learns at `backbone_lr_scale` times the head's rate (`GradientScale`);
    the head sees the features standardised by their statistics on that
    subset before fine-tuning. A small subset wants a small `batch_size`:
    30 epochs of 540 images are 60 steps at 256 but 480 at 32.
    Training views: random resized crop + flip. Needs a `.keras` backbone
    (a SavedModel export is inference-only). Writes `finetune.json`, and
    for an image folder the class map `class_names.json`, both into
    `output_dir`. `dataset`, `resize_method`, `class_names` and
    `test_fraction` are as in `linear_eval`; `seed` also draws a carved test
    split.

    Returns:
        A dict with `top1`, `top5` on the test split, sizes and timings.
    """
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    check_positive("lr", lr)
    check_non_negative("backbone_lr_scale", backbone_lr_scale)
    check_non_negative("weight_decay", weight_decay)
    check_int("seed", seed, 0)
    _check_label_fraction(label_fraction)
    subsets, split = (train_subset, test_subset), (test_fraction, seed)
    request = _DataRequest(dataset, data_dir, *subsets, resize_method, class_names, *split)
    request.check()
    start = time.time()
    names, names_source = request.class_map(output_dir)
    keras.utils.set_random_seed(seed)
    backbone = load_backbone(backbone_path)
    if isinstance(backbone, SavedModelBackbone):
        raise ValueError(
            "Fine-tuning needs a trainable backbone: pass the `backbone.keras` file "
            "of the pretraining run, not the exported SavedModel folder."
        )
    data = request.load(backbone, names_source)
    x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    os.makedirs(output_dir, exist_ok=True)
    indices = stratified_subset(y_train, label_fraction, seed)
    with open(os.path.join(output_dir, "subset_indices.json"), "w") as f:
        json.dump({"label_fraction": label_fraction, "seed": seed, "indices": indices.tolist()}, f)
    x_train, y_train = x_train[indices], y_train[indices]
    batch_size = min(batch_size, len(x_train))

    classifier = _finetune_classifier(backbone, x_train, data.num_classes, backbone_lr_scale)
    steps = epochs * max(1, len(x_train) // batch_size)
    classifier.compile(
        optimizer=keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(lr, steps),
            momentum=0.9,
            weight_decay=weight_decay,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    train = data_lib.labeled_dataset(
        x_train,
        y_train,
        batch_size=batch_size,
        augment="crop_flip",
        shuffle=True,
        drop_remainder=True,
        seed=seed,
    )
    history = classifier.fit(train, epochs=epochs, verbose=verbose, shuffle=False)  # tf.data order
    logits = classifier.predict(
        data_lib.labeled_dataset(x_test, y_test, batch_size=256).map(lambda x, y: x), verbose=0
    )
    probabilities = np.asarray(keras.ops.softmax(logits))
    result = {
        "backbone_path": os.fspath(backbone_path),
        **_data_record(data),
        **_save_class_map(names, output_dir),
        "label_fraction": label_fraction,
        "train_images": int(len(x_train)),
        "top1": top_k_accuracy(probabilities, y_test, 1),
        "top5": top_k_accuracy(probabilities, y_test, 5),
        "final_train_accuracy": float(history.history["accuracy"][-1]),
        "wall_time_s": time.time() - start,
    }
    _write_json(result, output_dir, "finetune.json")
    return result


def _write_json(result, folder, name):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
        json.dump(result, f, indent=2)
