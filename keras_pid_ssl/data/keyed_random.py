"""Epoch-keyed randomness: epoch `e` of a pipeline depends on `(seed, e)` only.

A `tf.data` pipeline seeded the usual way draws its shuffle order and its
augmentation from stateful generators. Their state lives in the process, so a
run resumed from a backup replays epoch 0's order and crops at its first
epoch, and the parallel augmentation map advances a generator in whatever
order its threads run. Here every pass over the data starts by reading an
epoch counter (`epoch_variable`), shuffles with a stateless shuffle keyed by
`(seed, epoch)`, and gives each batch a key derived from `(seed, epoch,
step)`. While the augmentation function is traced, every augmentation layer
of this package draws its random parameters from that key (`keyed_layers`,
on the public `kps.augment.base.key_scope`) instead of its own generator, so
augmentation is stateless, parallel and reproducible.
`kps.callbacks.DataEpoch` sets the counter to Keras's epoch number at the
start of each epoch, which makes a resumed `fit` see the same data as an
uninterrupted one.
"""

import contextlib
import random

from keras_pid_ssl.augment.base import key_scope
from keras_pid_ssl.utils.optional import import_tensorflow


def _tf():
    return import_tensorflow("kps.data's tf.data pipelines", for_data=True)


def epoch_variable():
    """An int64 scalar `tf.Variable` on the host: the pipeline's next epoch."""
    tf = _tf()
    with tf.device("/CPU:0"):
        return tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")


def base_key(seed):
    """The `(2,)` int64 key of a seed.

    `seed=None` draws one from Python's `random`, as Keras's unseeded
    generators do, so `keras.utils.set_random_seed` still fixes it.
    """
    tf = _tf()
    if seed is None:
        seed = random.randint(1, 10**9)
    return tf.constant([int(seed), 0], dtype=tf.int64)


def fold_in(key, data):
    """A new key from `key` and an integer tensor (stateless)."""
    tf = _tf()
    return tf.random.experimental.stateless_fold_in(key, tf.cast(data, tf.int64))


@contextlib.contextmanager
def keyed_layers(layers, key):
    """Makes this package's augmentation layers called inside draw from `key`.

    For tracing a `tf.data` function: every draw of every `kps.augment`
    layer (also inside `Pipeline`s, `Views` and `RandomApply`) gets its own
    key folded from `key`, in call order, through the public
    `kps.augment.base.key_scope`. Random layers that draw some other way
    (Keras core's `keras.layers.RandomFlip`, KerasCV's) keep their own
    generators: use `kps.augment.RandomFlip` and `RandomGrayscale` instead.

    Args:
        layers: the layers about to be called (kept for the callers; the
            scope covers every layer called inside it).
        key: a `(2,)` integer key, e.g. `fold_in(base_key(seed), step)`.
    """
    del layers  # the scope keys whatever is called inside it
    with key_scope(key):
        yield
