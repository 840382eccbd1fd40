"""The base class of this package's augmentation layers, on public Keras API only.

`AugmentationLayer` is a plain `keras.layers.Layer`. Its subclasses draw their
random parameters in `get_random_transformation(data, training, seed)` and
apply them in `transform_images(images, transformation, training)`, so the
same parameters can be re-applied, and write both with the op set
`self.backend` (`ops.numpy.*`, `ops.random.uniform`, `ops.image.*`, ...):

- called eagerly or inside a model, `self.backend` is `KERAS_OPS`: `keras.ops`
  and `keras.random` of the active backend;
- called inside a `tf.data` pipeline (symbolic TensorFlow tensors) under the
  JAX or PyTorch backend, it is `TENSORFLOW_OPS`, the same ops written with
  TensorFlow, so the layer runs in `tf.data` whatever `KERAS_BACKEND` is.
  (Under the TensorFlow backend `keras.ops` are TensorFlow ops already.)

Randomness comes, in order, from the `seed` passed to
`get_random_transformation` (an int or a `(2,)` integer key), else from the
key of an enclosing `key_scope(key)`, which makes every draw of every layer
called inside it stateless (`kps.data` pipelines key each batch by `(seed,
epoch, step)` this way), else from the layer's own `keras.random.SeedGenerator`
(in `tf.data` under JAX or PyTorch: a `tf.random.Generator` seeded alike).
The keyed draws are the same on every backend inside `tf.data`.
"""

import contextlib
import numbers
import random
import sys
import threading

import keras

__all__ = [
    "AugmentationLayer",
    "KERAS_OPS",
    "KeyStream",
    "TENSORFLOW_OPS",
    "check_value_range",
    "current_key_stream",
    "in_tf_data",
    "key_scope",
]


def check_value_range(value_range):
    if (
        not isinstance(value_range, (tuple, list))
        or len(value_range) != 2
        or not all(isinstance(v, numbers.Real) for v in value_range)
        or value_range[0] >= value_range[1]
    ):
        raise ValueError(
            "`value_range` must be a pair (low, high) with low < high, e.g. (0, 1) "
            f"or (0, 255). Received: value_range={value_range!r}"
        )
    return (float(value_range[0]), float(value_range[1]))


def _tensorflow():
    # Only reached with TensorFlow tensors in hand, so it is imported already.
    return sys.modules["tensorflow"]


def _int32_seed(tf, key):
    # As Keras's TensorFlow backend casts its seeds (stateless ops need int32
    # under XLA), so that keyed draws match across the two op sets.
    if key.dtype == tf.int32:
        return key
    return tf.cast(tf.math.floormod(key, tf.int32.max - 1), tf.int32)


class FixedSeed(keras.random.SeedGenerator):
    """A `keras.random` seed that is always `key` (a `(2,)` integer tensor).

    `keras.random.*` take an int or a `SeedGenerator` as `seed` and draw with
    the generator's `next()`; this one returns the key and keeps no state
    (no variable), so a keyed draw is stateless on every backend and under
    `jit`. It never calls `SeedGenerator.__init__`, which creates the state.
    """

    def __init__(self, key):  # keeps SeedGenerator's state variable out on purpose
        self.key = key

    def next(self, ordered=True):
        return self.key


class _KerasRandom:
    @staticmethod
    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        if seed is not None and not isinstance(seed, (int, keras.random.SeedGenerator)):
            seed = FixedSeed(KERAS_OPS.key_of(seed))
        return keras.random.uniform(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)


class KerasOps:
    """The op set of the active backend: `keras.ops` and `keras.random`."""

    numpy = keras.ops
    core = keras.ops
    image = keras.ops.image
    nn = keras.ops.nn
    random = _KerasRandom
    cast = staticmethod(keras.ops.cast)
    shape = staticmethod(keras.ops.shape)
    convert_to_tensor = staticmethod(keras.ops.convert_to_tensor)

    @property
    def name(self):
        return keras.backend.backend()

    def key_of(self, seed):
        """A `(2,)` key tensor of the backend's seed dtype from an int or a key."""
        dtype = "uint32" if self.name == "jax" else "int32"
        if isinstance(seed, numbers.Integral):
            return keras.ops.convert_to_tensor([int(seed) & 0x7FFFFFFF, 0], dtype=dtype)
        if self.name == "tensorflow":
            return seed  # int32 or int64: cast on use, as Keras does
        return keras.ops.cast(seed, dtype)

    def fold_in(self, key, data):
        """A key for draw number `data` (an int) of `key`: distinct per `data`."""
        if self.name == "tensorflow":
            return TENSORFLOW_OPS.fold_in(key, data)
        key = self.key_of(key)
        return key + keras.ops.convert_to_tensor([0, int(data)], dtype=key.dtype)


class _TensorFlowNamespace:
    """Ops written with TensorFlow under the names of a `keras.ops` namespace.

    `aliases` maps an op's name to the TensorFlow function (a path under
    `tf`) that takes the same arguments, looked up when used; `functions`
    are the ops whose arguments or defaults differ from TensorFlow's.
    """

    def __init__(self, aliases, **functions):
        self._aliases = aliases
        for name, function in functions.items():
            setattr(self, name, function)

    def __getattr__(self, name):
        path = self.__dict__.get("_aliases", {}).get(name)
        if path is None:
            raise AttributeError(f"The TensorFlow op set has no {name!r}.")
        function = _tensorflow()
        for part in path.split("."):
            function = getattr(function, part)
        return function


def _tf_arange(start, stop=None, step=1, dtype=None):
    if stop is None:
        start, stop = 0, start
    return _tensorflow().range(start, stop, step, dtype=dtype or "int32")


# Ops of `keras.ops` that TensorFlow has under the same name, with the same arguments.
_SAME_IN_TENSORFLOW = (
    "where",
    "reshape",
    "zeros_like",
    "ones_like",
    "stack",
    "expand_dims",
    "squeeze",
    "tile",
    "logical_and",
    "minimum",
    "floor",
    "round",
    "sqrt",
    "exp",
    "square",
)
# The `keras.ops` used by the augmentation layers, written with TensorFlow.
_TF_NUMPY = _TensorFlowNamespace(
    {
        **{name: name for name in _SAME_IN_TENSORFLOW},
        "clip": "clip_by_value",
        "mean": "reduce_mean",
        "sum": "reduce_sum",
        "max": "reduce_max",
        "take": "gather",
    },
    argsort=lambda x, axis=-1: _tensorflow().argsort(x, axis=axis, stable=True),
    argmax=lambda x, axis=None: _tensorflow().argmax(x, axis=axis, output_type="int32"),
    nonzero=lambda x: tuple(_tensorflow().unstack(_tensorflow().where(x), axis=1)),
    flip=lambda x, axis: _tensorflow().reverse(x, [axis]),
    arange=_tf_arange,
    pad=lambda x, pad_width, mode="constant": _tensorflow().pad(x, pad_width, mode=mode.upper()),
)
_TF_IMAGE = _TensorFlowNamespace(
    {"rgb_to_hsv": "image.rgb_to_hsv", "hsv_to_rgb": "image.hsv_to_rgb"}
)
_TF_CORE = _TensorFlowNamespace({"scatter_update": "tensor_scatter_nd_update"})
_TF_NN = _TensorFlowNamespace(
    {},
    one_hot=lambda x, num_classes, dtype="float32": _tensorflow().one_hot(
        x, num_classes, dtype=dtype
    ),
)


class _TFRandom:
    @staticmethod
    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        tf = _tensorflow()
        dtype = dtype or keras.config.floatx()
        return tf.random.stateless_uniform(
            shape,
            seed=_int32_seed(tf, TENSORFLOW_OPS.key_of(seed)),
            minval=tf.cast(minval, dtype),
            maxval=tf.cast(maxval, dtype),
            dtype=dtype,
        )


class TensorFlowOps:
    """The same op set written with TensorFlow, for `tf.data` under any backend."""

    name = "tensorflow"
    numpy = _TF_NUMPY
    core = _TF_CORE
    image = _TF_IMAGE
    nn = _TF_NN
    random = _TFRandom

    @staticmethod
    def cast(x, dtype):
        return _tensorflow().cast(x, dtype)

    @staticmethod
    def convert_to_tensor(x, dtype=None):
        return _tensorflow().convert_to_tensor(x, dtype=dtype)

    @staticmethod
    def shape(x):
        """Static dimensions as ints, unknown ones as scalar tensors (as `keras.ops.shape`)."""
        tf = _tensorflow()
        x = tf.convert_to_tensor(x)
        static = x.shape.as_list()
        if None not in static:
            return tuple(static)
        dynamic = tf.shape(x)
        return tuple(dynamic[i] if d is None else d for i, d in enumerate(static))

    @staticmethod
    def key_of(seed):
        tf = _tensorflow()
        if isinstance(seed, numbers.Integral):
            return tf.constant([int(seed) & 0x7FFFFFFF, 0], dtype=tf.int64)
        return tf.convert_to_tensor(seed)

    @staticmethod
    def fold_in(key, data):
        tf = _tensorflow()
        key = tf.cast(tf.convert_to_tensor(key), tf.int64)
        return tf.random.experimental.stateless_fold_in(key, tf.cast(data, tf.int64))


KERAS_OPS = KerasOps()
TENSORFLOW_OPS = TensorFlowOps()

_state = threading.local()


class KeyStream:
    """The keys of successive draws from one key: `fold_in(key, 1)`, `fold_in(key, 2)`, ...

    Inside a traced function every draw gets its own fixed offset: distinct
    streams for every random op, with no state to update.
    """

    def __init__(self, key):
        self.key = key
        self.draws = 0

    def next(self, ops):
        self.draws += 1
        return ops.fold_in(self.key, self.draws)


@contextlib.contextmanager
def key_scope(key):
    """Makes every augmentation layer of this package called inside draw from `key`.

    `key` is a `(2,)` integer tensor (e.g. `tf.random.experimental.
    stateless_fold_in` of a seed and the step). Draws are numbered in call
    order, so tracing the same function twice under the same key gives the
    same parameters. Keras core and KerasCV random layers keep their own
    generators. Scopes nest; the innermost wins. Build a
    `keras.layers.Pipeline` before keying its calls (`kps.data` pipelines
    do): its first call traces its steps to build them, which draws too.

    Example:

    >>> layer = kps.augment.RandomResizedCrop(8)
    >>> images = np.random.rand(4, 16, 16, 3).astype("float32")
    >>> with key_scope(np.array([1, 2], "int32")):
    ...     first = keras.ops.convert_to_numpy(layer(images))
    >>> with key_scope(np.array([1, 2], "int32")):
    ...     second = keras.ops.convert_to_numpy(layer(images))
    >>> bool((first == second).all())
    True
    """
    previous = current_key_stream()
    _state.stream = KeyStream(key)
    try:
        yield _state.stream
    finally:
        _state.stream = previous


def current_key_stream():
    """The `KeyStream` of the innermost `key_scope`, or `None`."""
    return getattr(_state, "stream", None)


def _current_ops():
    return getattr(_state, "ops", None) or KERAS_OPS


@contextlib.contextmanager
def _ops_scope(ops):
    previous = getattr(_state, "ops", None)
    _state.ops = ops
    try:
        yield
    finally:
        _state.ops = previous


def in_tf_data(inputs):
    """True for symbolic TensorFlow tensors (a `tf.data` map) under JAX or PyTorch.

    A layer called with such inputs must not go through `Layer.__call__`,
    which converts them to the backend's tensors: `AugmentationLayer` then
    calls its `call` directly on `TENSORFLOW_OPS`.
    """
    tf = sys.modules.get("tensorflow")  # None where TensorFlow is made unimportable
    if tf is None or keras.backend.backend() == "tensorflow":
        return False
    images = inputs["images"] if isinstance(inputs, dict) else inputs
    return tf.is_tensor(images) and not tf.executing_eagerly()


class AugmentationLayer(keras.layers.Layer):
    """Shared plumbing: channels-last images, a seed, labels passed through.

    Subclasses implement `get_random_transformation(images, training, seed)`
    (per-sample parameters, leading dimension = batch size) and
    `transform_images(images, transformation, training)` with the op set
    `self.backend` (see the module docstring), and draw with
    `next_seed = self.seeds(seed)`: `ops.random.uniform(..., seed=next_seed())`.

    Args:
        seed: integer seed of the layer's own generator.
        data_format: `"channels_last"` (or `None`: Keras's image data format,
            which must then be channels-last).
        **kwargs: base layer arguments (`name`, `dtype`).
    """

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        data_format = keras.config.image_data_format() if data_format is None else data_format
        if data_format != "channels_last":
            raise ValueError(
                f"`{type(self).__name__}` supports channels_last images only. "
                f"Received: data_format={data_format!r}"
            )
        self.data_format = data_format
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.tf_data_generator = None

    @property
    def backend(self):
        """The op set of the current call: `KERAS_OPS` or, in `tf.data`, `TENSORFLOW_OPS`."""
        return _current_ops()

    def __call__(self, inputs, *args, **kwargs):
        if not in_tf_data(inputs):
            return super().__call__(inputs, *args, **kwargs)
        # In tf.data under JAX or PyTorch: no conversion to the backend's
        # tensors, TensorFlow ops throughout.
        training = kwargs.pop("training", args[0] if args else True)
        with _ops_scope(TENSORFLOW_OPS):
            if not self.built:
                self.build(tuple(self.backend.shape(self.images_of(inputs))))
            return self.call(inputs, training=True if training is None else training)

    def build(self, input_shape):
        self.built = True

    def call(self, data, training=True):
        transformation = self.get_random_transformation(data, training=training)
        if isinstance(data, dict):
            data = dict(data)
            data["images"] = self.transform_any(data["images"], transformation, training)
            if "labels" in data:
                data["labels"] = self.transform_labels(
                    data["labels"], transformation, training=training
                )
            return data
        return self.transform_any(data, transformation, training)

    def transform_any(self, images, transformation, training=True):
        """`transform_images` for a batch, `transform_single_image` for one image."""
        images = self.backend.convert_to_tensor(images)
        if len(self.backend.shape(images)) == 3:
            return self.transform_single_image(images, transformation, training=training)
        return self.transform_images(images, transformation, training=training)

    def images_of(self, data):
        return data["images"] if isinstance(data, dict) else data

    def batch_size_of(self, images):
        shape = self.backend.shape(images)
        if len(shape) == 3:
            return 1
        if len(shape) == 4:
            return shape[0]
        raise ValueError(
            f"`{type(self).__name__}` expects images of shape (height, width, "
            f"channels) or (batch_size, height, width, channels). Received: "
            f"shape={tuple(shape)}"
        )

    def seeds(self, seed=None):
        """A function giving the seed of each successive draw of one transformation.

        `seed` (an int or a `(2,)` integer key) gives keys folded from it;
        else the enclosing `key_scope`'s stream; else the layer's generator.
        """
        ops = self.backend
        if seed is not None:
            stream = KeyStream(ops.key_of(seed))
            return lambda: stream.next(ops)
        stream = current_key_stream()
        if stream is not None:
            return lambda: stream.next(ops)
        if ops is KERAS_OPS:
            return lambda: self.generator
        # tf.data under JAX or PyTorch: Keras's generator lives on the other
        # backend; a TensorFlow generator, seeded alike, gives one key per call.
        tf = _tensorflow()
        if self.tf_data_generator is None:
            with tf.init_scope():
                seed = self.seed if self.seed is not None else random.randint(1, 10**9)
                self.tf_data_generator = tf.random.Generator.from_seed(seed)
        stream = KeyStream(self.tf_data_generator.make_seeds(1)[:, 0])
        return lambda: stream.next(ops)

    def transform_single_image(self, image, transformation, training=True):
        images = self.backend.numpy.expand_dims(image, axis=0)
        outputs = self.transform_images(images, transformation, training=training)
        return self.backend.numpy.squeeze(outputs, axis=0)

    def transform_labels(self, labels, transformation, training=True):
        return labels

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(seed=self.seed, data_format=self.data_format)
        return config
