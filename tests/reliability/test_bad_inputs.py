"""Reliability suite: bad inputs fail early and clearly, or warn (issue 17).

`BAD` and `WARN` are tables of cheap cases (no training beyond a step): what a
careless or unlucky user passes, the error (or warning) class, and a fragment
of its message, which must name the argument, what it got and how to fix it.
The tests after the tables check the behaviours a table row cannot: the NaN
guard (a NaN later in training stops `fit` on every backend), batches of one
image, and the recipe's list flag.

Kinds covered elsewhere, not repeated here (they need a model export or a
recipe run):
- wrong dtypes and ranges to exported endpoints:
  tests/export/test_export_backbone.py (`test_serve_refuses_integer_images_...`,
  `test_serve_refuses_floats_outside_zero_one`, `test_serve_uint8_refuses_floats_...`);
- resume mismatches (other seed, method, data or architecture), locks, reruns
  and kills between the history row and the backup: tests/recipes/test_records.py;
- corrupt backups falling back to the previous one:
  tests/callbacks/test_resumable_backup.py;
- stable class maps of image folders: tests/data/test_label_map.py and
  tests/recipes/test_eval_labels.py;
- bad `kps.training.pretrain` arguments: tests/recipes/test_recipe_arguments.py.
"""

import json
import math
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from keras import ops

import keras_pid_ssl as kps
from conftest import make_views
from conftest import once_per_ci
from conftest import tiny_encoder
from conftest import tiny_projector
from conftest import view_batch
from conftest import view_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model(input_range=(0.0, 1.0)):
    model = kps.SSLModel(
        tiny_encoder(), tiny_projector(), loss=kps.losses.BarlowTwinsLoss(), input_range=input_range
    )
    model.compile(optimizer="adam")
    return model


def _fit(x, model=None, **kwargs):
    model = model or _model()
    return model.fit(x, epochs=1, verbose=0, **kwargs)


def _views(n=4, **changes):
    v1, v2 = make_views(n=n)
    batch = view_batch(v1, v2)
    batch.update(changes)
    return batch


def _nan_views():
    v1, v2 = make_views(n=4)
    v1 = v1.copy()
    v1[1, 2, 3, 0] = np.nan
    return view_batch(v1, v2)


def _images(n=20):
    return np.random.default_rng(0).uniform(size=(n, 8, 8, 1)).astype("float32")


def _garbage_backup(tmp_path):
    folder = tmp_path / "backup" / "epoch-000001"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text("{not json")
    (folder / "model.weights.h5").write_bytes(b"garbage")
    return kps.callbacks.ResumableBackup(str(tmp_path / "backup")).latest()


def _noise(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d)).astype("float32")


# (id, callable taking tmp_path, error class, regex fragment of the message)
BAD = [
    # NaN, dtype and range of the pixels fit receives (first batch).
    ("nan_pixels", lambda _: _fit(_nan_views()), ValueError, "finite pixel values; view 'view1'"),
    (
        "uint8_views",
        lambda _: _fit(_views(view1=np.zeros((4, 8, 8, 1), "uint8"))),
        ValueError,
        "view 'view1' has dtype uint8. Convert with images / 255",
    ),
    (
        "0_255_floats",
        lambda _: _fit(_views(view1=np.full((4, 8, 8, 1), 200.0, "float32"))),
        ValueError,
        "values in \\[200, 200\\] \\(0-255 pixels\\? divide by 255\\)",
    ),
    # Unhelpful crashes of the review, now named.
    ("empty_arrays", lambda _: _fit(_views(n=0)), ValueError, "empty view 'view1'"),
    (
        "empty_arrays_no_range",
        lambda _: _fit(_views(n=0), _model(input_range=None)),
        ValueError,
        "received 0 image\\(s\\) to train on",
    ),
    (
        "tuple_of_views",
        lambda _: _fit(make_views(n=4)),
        ValueError,
        "dict with keys \\['view1', 'view2'\\].*received a tuple",
    ),
    (
        "missing_view",
        lambda _: _fit({"view1": make_views(n=4)[0]}),
        ValueError,
        "missing \\['view2'\\]",
    ),
    (
        "y_given",
        lambda _: _model().fit(_views(), np.zeros(4), verbose=0),
        ValueError,
        "takes batches of named views as `x`.*no `y`",
    ),
    (
        "knn_labels_minus_one",
        lambda _: kps.callbacks.KNNMonitor(
            (_images(), -np.ones(20, "int64")), (_images(), np.zeros(20, "int64"))
        ),
        ValueError,
        "-1 marks an unlabeled image",
    ),
    (
        "probe_labels_beyond_classes",
        lambda _: kps.callbacks.OnlineLinearProbe(
            (_images(), np.arange(20)), (_images(), np.arange(20) % 3), num_classes=5
        ),
        ValueError,
        "class labels in \\[0, 5\\).*Received labels in \\[0, 19\\]",
    ),
    (
        "garbage_backup",
        _garbage_backup,
        ValueError,
        "No intact backup in .*backup.*state.json is unreadable",
    ),
    # Unchecked parameters of the review.
    (
        "lars_negative_lr",
        lambda _: kps.optimizers.LARS(learning_rate=-1),
        ValueError,
        "`learning_rate` must be a finite positive number. Received: learning_rate=-1",
    ),
    (
        "pid_loss_negative_delta",
        lambda _: kps.losses.PIDLoss(delta=-1),
        ValueError,
        "`delta` must be in \\(0, 1\\). Received: delta=-1",
    ),
    (
        "pid_loss_negative_epsilon",
        lambda _: kps.losses.PIDLoss(epsilon=-1),
        ValueError,
        "`epsilon` must be a finite positive number. Received: epsilon=-1",
    ),
    (
        "pid_protocol_no_pid_stage",
        lambda _: kps.callbacks.PIDProtocol(epochs=10, warmup_epochs=50),
        ValueError,
        "training ends before the PID stage. Received: warmup_epochs=50",
    ),
    (
        "projector_float_width",
        lambda _: kps.heads.Projector(hidden_dims=(32.7,), output_dim=8),
        ValueError,
        "`hidden_dims\\[0\\]` must be an int >= 1. Received: hidden_dims\\[0\\]=32.7",
    ),
    (
        "projector_float_output",
        lambda _: kps.heads.Projector(output_dim=8.5),
        ValueError,
        "`output_dim` must be an int >= 1. Received: output_dim=8.5",
    ),
    # A batch of one image, whatever the backend.
    (
        "batch_of_one_call",
        lambda _: _model()(_views(n=1)),
        ValueError,
        "needs batch_size >= 2. Received batch_size=1",
    ),
    (
        "last_batch_of_one_arrays",
        lambda _: _fit(_views(n=17), batch_size=16),
        ValueError,
        "17 images with batch_size=16 leave a last batch of 1 image.*e.g. batch_size=15",
    ),
    (
        "last_batch_of_one_validation_split",
        lambda _: _fit(_views(n=20), batch_size=16, validation_split=0.15),
        ValueError,
        "17 images with batch_size=16 leave a last batch of 1 image",
    ),
    (
        "unknown_batch_dimension",
        lambda _: _fit(view_dataset(*make_views(n=17), batch_size=16, drop_remainder=False)),
        ValueError,
        "unknown batch dimension.*drop_remainder=True",
    ),
    (
        "ssl_dataset_unknown_batch_dimension",
        lambda _: _fit(
            kps.data.ssl_dataset(
                (_images(17) * 255).astype("uint8"),
                views="two",
                batch_size=16,
                augment="grayscale",
                drop_remainder=False,
            )
        ),
        ValueError,
        "view 'view1' has an unknown batch dimension",
    ),
]
# (id, callable, warning class, regex fragment): estimators with too few samples.
WARN = [
    (
        "diagonal_pid_n_below_10",
        lambda: kps.information.gaussian_pid(_noise(3, 8, 0), _noise(3, 8, 1), _noise(3, 8, 2)),
        UserWarning,
        "diagonal Gaussian PID estimator got N=3 samples for D=8",
    ),
    (
        "full_pid_n_below_2d",
        lambda: kps.information.gaussian_pid(
            _noise(12, 8, 0), _noise(12, 8, 1), _noise(12, 8, 2), estimator="full"
        ),
        UserWarning,
        "full Gaussian PID estimator got N=12 samples for D=8 dimensions \\(N < 2D",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_raises_a_clear_error(case, tmp_path):
    _, call, error, fragment = case
    with pytest.raises(error, match=fragment):
        call(tmp_path)


@pytest.mark.parametrize("case", WARN, ids=[c[0] for c in WARN])
def test_estimator_with_too_few_samples_warns(case):
    _, call, category, fragment = case
    with pytest.warns(category, match=fragment):
        call()


def test_mutual_information_with_too_few_samples_warns():
    # Independent noise, N=3 < D=8: the estimate is ~9 nats where the truth is 0.
    with pytest.warns(UserWarning, match="N=3"):
        kps.information.gaussian_mutual_information(_noise(3, 8, 0), _noise(3, 8, 1))


def test_python_lists_to_gaussian_pid_equal_arrays():
    z1, z2, t = (_noise(16, 2, seed) for seed in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_lists = kps.information.gaussian_pid(z1.tolist(), z2.tolist(), t.tolist())
        from_arrays = kps.information.gaussian_pid(z1, z2, t)
    for name, value in from_arrays.items():
        assert float(from_lists[name]) == pytest.approx(float(value), abs=1e-6), name


# --- The NaN guard -----------------------------------------------------------


class MaskingBarlowTwins(kps.losses.BarlowTwinsLoss):
    """Barlow Twins over the embeddings with non-finite entries zeroed.

    Its loss stays finite when the embeddings are NaN, while the gradients
    (0 * NaN through the network) are NaN: the review's case "the logged loss
    stays finite while the weights become NaN", here on every backend.
    """

    def terms(self, z1, z2):
        def clean(z):
            return ops.where(ops.isfinite(z), z, ops.zeros_like(z))

        return super().terms(clean(z1), clean(z2))


def test_nan_guard_returns_the_loss_or_nan():
    model = _model()
    z = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    loss = np.float32(1.25)
    assert float(model.nan_guard(ops.convert_to_tensor(loss), z, z)) == 1.25
    for bad in (np.nan, np.inf, -np.inf):
        z_bad = z.copy()
        z_bad[2, 1] = bad
        assert math.isnan(float(model.nan_guard(ops.convert_to_tensor(loss), z, z_bad)))
    assert math.isnan(float(model.nan_guard(ops.convert_to_tensor(np.float32(np.inf)), z, z)))


def test_compute_loss_equals_the_ssl_loss_when_finite():
    model = _model()
    batch = _views(n=8)
    y_pred = model(batch, training=False)
    expected = model.ssl_loss.terms(y_pred["view1"], y_pred["view2"])["loss"]
    got = model.compute_loss(batch, y_pred=y_pred, training=False)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)


def _nan_third_batch(num_views):
    views = [v.copy() for v in make_views(n=96, num_views=num_views)]
    views[0][40, 0, 0, 0] = np.nan  # batch 3 of 16; the first batch is clean
    return view_dataset(*views, batch_size=16)


class BatchCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


@pytest.mark.parametrize("kind", ["masking_ssl", "pid"])
def test_nan_in_a_later_batch_stops_fit_and_keeps_the_last_good_backup(kind, tmp_path):
    if kind == "pid":
        model = kps.PIDModel(tiny_encoder(), tiny_projector(), loss=kps.losses.PIDLoss())
        num_views = 3
    else:
        model = kps.SSLModel(tiny_encoder(), tiny_projector(), loss=MaskingBarlowTwins())
        num_views = 2
    model.compile(optimizer="adam")
    backup_dir = str(tmp_path / "backup")
    # Epoch 1 on clean data is backed up.
    model.fit(
        view_dataset(*make_views(n=96, num_views=num_views), batch_size=16),
        epochs=1,
        callbacks=[kps.callbacks.ResumableBackup(backup_dir)],
        verbose=0,
    )
    good = [ops.convert_to_numpy(w).copy() for w in model.weights]
    assert all(np.all(np.isfinite(w)) for w in good)
    # Epoch 2 meets a NaN pixel in its 3rd batch: TerminateOnNaN stops it there.
    counter = BatchCounter()
    with pytest.warns(UserWarning, match="backup of epoch 1 is kept"):
        history = model.fit(
            _nan_third_batch(num_views),
            epochs=3,
            callbacks=[
                counter,
                keras.callbacks.TerminateOnNaN(),
                kps.callbacks.ResumableBackup(backup_dir),
            ],
            verbose=0,
        )
    assert counter.batches == [0, 1, 2]
    assert history.epoch == [1]
    assert math.isnan(history.history["loss"][-1])
    # The latest backup is still epoch 1, with exactly the finite weights of epoch 1.
    backup = kps.callbacks.ResumableBackup(backup_dir)
    folder, state = backup.latest()
    assert state["epoch"] == 1
    model.load_weights(os.path.join(folder, "model.weights.h5"))
    for before, after in zip(good, model.weights, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(after), before)


# --- Batches of one image ----------------------------------------------------


def test_remainder_of_two_trains_with_keras_slicing():
    # 18 images, batch_size=16: batches of 16 and 2, both usable.
    counter = BatchCounter()
    history = _fit(_views(n=18), batch_size=16, callbacks=[counter])
    assert len(counter.batches) == 2
    assert np.isfinite(history.history["loss"][0])


def test_kps_ssl_dataset_has_a_static_batch_dimension():
    dataset = kps.data.ssl_dataset(
        (_images(40) * 255).astype("uint8"), views="pid", batch_size=16, augment="grayscale"
    )
    assert {key: spec.shape[0] for key, spec in dataset.element_spec.items()} == {
        "view1": 16,
        "view2": 16,
        "target": 16,
    }


# --- Recipe flags ------------------------------------------------------------


# absl parses the flags before the recipe touches a backend.
@once_per_ci()
@pytest.mark.parametrize("value", ["abc", "32.5", "0,16", "16,x"])
def test_recipe_projector_dims_flag_is_named(value, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "recipes", "pretrain_cifar.py"),
            f"--projector_dims={value}",
            f"--output_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "flag --projector_dims=" in result.stderr
    assert "comma-separated positive ints" in result.stderr
    assert "invalid literal" not in result.stderr
    assert not os.listdir(tmp_path)


@once_per_ci()
def test_recipe_integer_flag_errors_name_the_flag(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "pretrain_cifar.py"), "--epochs=abc"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "flag --epochs=abc" in result.stderr


def test_table_ids_are_unique():
    ids = [c[0] for c in BAD] + [c[0] for c in WARN]
    assert len(ids) == len(set(ids)), json.dumps(ids)
