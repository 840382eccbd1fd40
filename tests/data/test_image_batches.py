"""`kps.data.ImageBatches`: TensorFlow-free uint8 batches keyed by (seed, epoch)."""

import numpy as np
import pytest

from keras_pid_ssl.callbacks.data_epoch import DataEpoch
from keras_pid_ssl.data.image_batches import ImageBatches


def _images(count=10):
    # Image i is filled with the value i: a batch names the images it holds.
    return np.arange(count, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 1), np.uint8)


def _ids(batches):
    return [batches[i]["images"][:, 0, 0, 0].tolist() for i in range(len(batches))]


def test_each_pass_is_a_seeded_permutation_of_full_batches():
    batches = ImageBatches(_images(), batch_size=3, seed=7)
    assert len(batches) == 3  # 10 // 3: the partial batch is dropped
    first = _ids(batches)
    expected = np.random.default_rng([7, 0]).permutation(10)[:9].reshape(3, 3).tolist()
    assert first == expected
    assert len({i for batch in first for i in batch}) == 9
    batches.on_epoch_end()
    second = _ids(batches)
    assert batches.epoch == 1 and second != first
    assert second == np.random.default_rng([7, 1]).permutation(10)[:9].reshape(3, 3).tolist()


def test_data_epoch_replays_any_pass_as_a_resumed_run_needs():
    batches = ImageBatches(_images(), batch_size=2, seed=3)
    reference = []
    for _ in range(3):
        reference.append(_ids(batches))
        batches.on_epoch_end()
    resumed = ImageBatches(_images(), batch_size=2, seed=3)
    callback = DataEpoch(resumed)
    callback.on_epoch_begin(2)
    assert _ids(resumed) == reference[2]
    callback.on_epoch_begin(0)
    assert _ids(resumed) == reference[0]


def test_labels_travel_with_their_images_and_no_shuffle_keeps_the_order():
    labels = np.arange(10) * 10
    batches = ImageBatches(_images(), batch_size=4, seed=0, labels=labels)
    batch = batches[1]
    np.testing.assert_array_equal(batch["label"], batch["images"][:, 0, 0, 0] * 10)
    ordered = ImageBatches(_images(), batch_size=5, shuffle=False)
    assert _ids(ordered) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"`batch_size` must be an int in \[2, 10\]"):
        ImageBatches(_images(), batch_size=11)
    with pytest.raises(ValueError, match="uint8"):
        ImageBatches(_images().astype("float32"), batch_size=2)
    with pytest.raises(ValueError, match=r"`labels` must have shape \(10,\)"):
        ImageBatches(_images(), batch_size=2, labels=np.zeros(9))
    with pytest.raises(IndexError):
        ImageBatches(_images(), batch_size=5)[2]
