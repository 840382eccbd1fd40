"""Epoch-keyed randomness: epoch `e` of a pipeline depends on `(seed, e)` only.

A `tf.data` pipeline seeded the usual way draws its shuffle order and its
augmentation from stateful generators. Their state lives in the process, so a
run resumed from a backup replays epoch 0's order and crops at its first
epoch, and the parallel augmentation map advances a generator in whatever
order its threads run. Here every pass over the data starts by reading an
epoch counter (`epoch_variable`), shuffles with a stateless shuffle keyed by
`(seed, epoch)`, and gives each batch a key derived from `(seed, epoch,
step)`. While the augmentation function is traced, every Keras preprocessing
layer in it draws its seeds from that key (`keyed_layers`) instead of its own
generator, so augmentation is stateless, parallel and reproducible.
`kps.callbacks.DataEpoch` sets the counter to Keras's epoch number at the
start of each epoch, which makes a resumed `fit` see the same data as an
uninterrupted one.
"""

import contextlib
import random

import keras

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


class _KeyedSeedGenerator(keras.random.SeedGenerator):
    """Stands in for a layer's generator while a `tf.data` function is traced.

    Each draw in the traced graph gets its own fixed offset, folded into the
    batch key: distinct streams for every random op, with no state to update.
    It keeps no variable, so it never calls `SeedGenerator.__init__`.
    """

    def __init__(self, key):  # noqa: keeps SeedGenerator's state out on purpose
        self._key = key
        self._draws = 0

    def next(self, ordered=True):
        self._draws += 1
        return fold_in(self._key, self._draws)


@contextlib.contextmanager
def keyed_layers(layers, key):
    """Makes every preprocessing layer in `layers` (and inside them) draw from `key`.

    Only for tracing a `tf.data` function: the layers' generators are
    restored on exit. Layers that draw their randomness some other way (e.g.
    KerasCV's) keep their own generators.
    """
    generator = _KeyedSeedGenerator(key)
    # By id: a layer shared by two views (or nested twice) is patched once.
    patched = {}
    for layer in layers:
        for sublayer in layer._flatten_layers(include_self=True, recursive=True):
            if hasattr(sublayer, "_get_seed_generator") and id(sublayer) not in patched:
                object.__setattr__(sublayer, "_get_seed_generator", lambda backend=None: generator)
                patched[id(sublayer)] = sublayer
    try:
        yield
    finally:
        for sublayer in patched.values():
            object.__delattr__(sublayer, "_get_seed_generator")
