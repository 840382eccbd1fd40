"""`strategy_scope`: one entry point for single-device, multi-device and
multi-host training on TensorFlow and JAX."""

import os

import keras

from keras_pid_ssl.distribute import scaling
from keras_pid_ssl.utils.validation import check_choice

STRATEGY_NAMES = ("none", "mirrored", "multiworker", "tpu", "jax_data_parallel")

# The backend each strategy needs; "none" runs on every backend.
_REQUIRED_BACKEND = {
    "mirrored": "tensorflow",
    "multiworker": "tensorflow",
    "tpu": "tensorflow",
    "jax_data_parallel": "jax",
}
_SUGGESTION = {
    "tensorflow": "'mirrored' (one host), 'multiworker' (several hosts) or 'tpu'",
    "jax": "'jax_data_parallel' (one or several hosts)",
    "torch": (
        "'none' only: Keras has no multi-device trainer for PyTorch; use "
        "KERAS_BACKEND=tensorflow or jax to train on several devices"
    ),
}


def _check_backend(name, backend):
    required = _REQUIRED_BACKEND.get(name)
    if required is not None and backend != required:
        raise ValueError(
            f"strategy {name!r} needs KERAS_BACKEND={required}, but the Keras "
            f"backend is {backend!r}. With {backend!r} use "
            f"{_SUGGESTION.get(backend, repr('none'))}."
        )


def _check_unused(name, **arguments):
    for argument, value in arguments.items():
        if value is not None:
            raise ValueError(
                f"`{argument}` does not apply to strategy {name!r}. Received: {argument}={value!r}"
            )


class StrategyScope:
    """Sets up data-parallel training on one or many devices and hosts.

    Create it as `strategy_scope(name, ...)` (the same class) and use it as a
    context manager around model creation, `compile` and `fit`. Entering it
    enters `strategy.scope()` of the `tf.distribute` strategy (TensorFlow) or
    makes the `keras.distribution.DataParallel` distribution current (JAX);
    leaving it restores what was there before.

    With every strategy, SSL losses compute their statistics over the global
    batch and their gradients equal those of one device on the global batch
    (see `gather_replicas`). Build, compile and `fit` the model inside the
    `with` block; batch the dataset at the global batch size
    (`scope.global_batch_size(per_replica_batch_size)`).

    Names:
        `"none"`: the default device (every backend).
        `"mirrored"`: `tf.distribute.MirroredStrategy` over `devices` (default:
            all GPUs of this host, else the CPU).
        `"multiworker"`: `tf.distribute.MultiWorkerMirroredStrategy`; the
            cluster comes from the `TF_CONFIG` environment variable.
        `"tpu"`: `tf.distribute.TPUStrategy` on the TPU named by `tpu`.
        `"jax_data_parallel"`: `keras.distribution.DataParallel` over
            `devices` (default: all devices of all hosts); with
            `coordinator_address`, `num_processes` and `process_id` (or the
            environment variables `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
            `KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID`)
            first joins a multi-host cluster (`jax.distributed.initialize`).

    Args:
        name: one of the names above.
        devices: device names, e.g. `["/gpu:0", "/gpu:1"]` (TF) or
            `["gpu:0", "gpu:1"]` (JAX); `"mirrored"` and
            `"jax_data_parallel"` only.
        coordinator_address: `"host:port"` of process 0 (JAX, several hosts).
        num_processes: number of processes (JAX, several hosts).
        process_id: this process's index in `[0, num_processes)`.
        tpu: for `"tpu"`: the TPU's name or `grpc://` address, `"local"`
            on a Cloud TPU VM, or None to read it from the environment.

    Attributes:
        name: the strategy name.
        strategy: the `tf.distribute.Strategy`, or None.
        distribution: the `keras.distribution.Distribution`, or None.
        num_replicas: devices (replicas) in sync over all hosts.
        synchronized_batch_norm: pass it as `synchronized_bn` to the
            backbones and the projector.

    Raises:
        ValueError: if the name is unknown or needs another backend, or an
            argument does not apply to it.

    Example:

    >>> scope = strategy_scope("none")
    >>> with scope:
    ...     scope.num_replicas, scope.global_batch_size(per_replica_batch_size=64)
    (1, 64)

    On several GPUs (TensorFlow):

    ```python
    import keras_pid_ssl as kps
    with kps.distribute.strategy_scope("mirrored") as scope:
        batch_size = scope.global_batch_size(per_replica_batch_size=128)
        lr = scope.scale_learning_rate(0.2, per_replica_batch_size=128)
        encoder = kps.backbones.ResNet18(
            input_shape=(32, 32, 3), synchronized_bn=scope.synchronized_batch_norm
        )
        projector = kps.heads.Projector(synchronized_bn=scope.synchronized_batch_norm)
        model = kps.PIDModel(encoder, projector, loss=kps.losses.PIDLoss())
        model.compile(optimizer=keras.optimizers.SGD(lr))
        model.fit(dataset.batch(batch_size, drop_remainder=True), epochs=10)
    ```
    """

    def __init__(
        self,
        name="none",
        devices=None,
        coordinator_address=None,
        num_processes=None,
        process_id=None,
        tpu=None,
    ):
        check_choice("name", name, STRATEGY_NAMES)
        backend = keras.backend.backend()
        _check_backend(name, backend)
        if name != "mirrored" and name != "jax_data_parallel":
            _check_unused(name, devices=devices)
        if name != "jax_data_parallel":
            _check_unused(
                name,
                coordinator_address=coordinator_address,
                num_processes=num_processes,
                process_id=process_id,
            )
        if name != "tpu":
            _check_unused(name, tpu=tpu)
        self.name = name
        self.strategy = None
        self.distribution = None
        self._active = None
        if name == "mirrored":
            self.strategy = _mirrored(devices)
        elif name == "multiworker":
            self.strategy = _multi_worker()
        elif name == "tpu":
            self.strategy = _tpu(tpu)
        elif name == "jax_data_parallel":
            self.distribution = _jax_data_parallel(
                devices, coordinator_address, num_processes, process_id
            )

    @property
    def num_replicas(self):
        if self.strategy is not None:
            return int(self.strategy.num_replicas_in_sync)
        if self.distribution is not None:
            return int(self.distribution.num_model_replicas)
        return 1

    @property
    def synchronized_batch_norm(self):
        """Whether to build batch norms with `synchronized=True`.

        True under a `tf.distribute` strategy with several replicas, where a
        plain batch norm would normalise each replica's slice on its own. JAX's
        `DataParallel` step is one global program whose batch statistics are
        global already (and Keras accepts `synchronized=True` on TF only).
        """
        return self.strategy is not None and self.num_replicas > 1

    def global_batch_size(self, per_replica_batch_size):
        """`per_replica_batch_size * num_replicas`: batch the dataset with this."""
        return scaling.global_batch_size(per_replica_batch_size, self.num_replicas)

    def per_replica_batch_size(self, global_batch_size):
        """The slice of `global_batch_size` that each replica processes."""
        return scaling.per_replica_batch_size(global_batch_size, self.num_replicas)

    def scale_learning_rate(
        self,
        base_learning_rate,
        per_replica_batch_size,
        reference_batch_size=scaling.REFERENCE_BATCH_SIZE,
    ):
        """Linear scaling: `base * per_replica * num_replicas / reference`."""
        return scaling.scale_learning_rate(
            base_learning_rate,
            self.global_batch_size(per_replica_batch_size),
            reference_batch_size,
        )

    def __enter__(self):
        if self._active is not None:
            raise RuntimeError(f"{self!r} is already entered.")
        if self.strategy is not None:
            self._active = self.strategy.scope()
            self._active.__enter__()
        elif self.distribution is not None:
            self._active = keras.distribution.distribution() or False
            keras.distribution.set_distribution(self.distribution)
        else:
            self._active = False
        return self

    def __exit__(self, *exc_info):
        active, self._active = self._active, None
        if self.strategy is not None:
            return active.__exit__(*exc_info)
        if self.distribution is not None:
            keras.distribution.set_distribution(active or None)
        return False

    def __repr__(self):
        return (
            f"<StrategyScope name={self.name!r} backend="
            f"{keras.backend.backend()!r} num_replicas={self.num_replicas}>"
        )


# One tf.distribute strategy per set-up and process. Two strategies with
# collective ops in one process number their collectives alike (group 1,
# instances from 100) and the runtime then pairs a collective of one with a
# collective of the other ("Collective instance 100 expected type ..."); a
# MultiWorkerMirroredStrategy can only be created once per process anyway.
_TF_STRATEGIES = {}


def _cached_strategy(key, make):
    if key not in _TF_STRATEGIES:
        _TF_STRATEGIES[key] = make()
    return _TF_STRATEGIES[key]


def _mirrored(devices):
    import tensorflow as tf

    key = ("mirrored", None if devices is None else tuple(devices))
    return _cached_strategy(key, lambda: tf.distribute.MirroredStrategy(devices=devices))


def _multi_worker():
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """`tf.distribute.MultiWorkerMirroredStrategy` with a `reduce` that
        Keras 3's `fit` can use on several workers.

        With more than one worker, the stock `reduce` breaks Keras 3's TF
        trainer twice (keras-team/keras#20585, tensorflow/tensorflow#72388):
        `_maybe_symbolic_build` reduces the first batch, a tuple, which the
        stock `reduce` cannot take ("Attempt to convert a value
        (PerReplica...)"), and `reduce_per_replica` averages the per-replica
        scalar logs with `axis=0`, which a scalar does not have. This `reduce`
        maps over nests and averages scalars over replicas (`axis=None`),
        which is what the trainer does on one worker.
        """

        def reduce(self, reduce_op, value, axis):
            reduce_one = super().reduce

            def reduce_leaf(leaf):
                local = self.experimental_local_results(leaf)[0]
                leaf_axis = None if getattr(local.shape, "rank", None) == 0 else axis
                return reduce_one(reduce_op, leaf, leaf_axis)

            return tf.nest.map_structure(reduce_leaf, value)

    def make():
        try:
            return MultiWorkerMirroredStrategy()
        except RuntimeError as error:
            if "program startup" not in str(error):
                raise
            raise RuntimeError(
                "strategy 'multiworker' must be created before TensorFlow runs "
                "any op (e.g. before loading data): call "
                "kps.distribute.strategy_scope('multiworker') first in the "
                f"program. TensorFlow said: {error}"
            ) from error

    # The cluster comes from the TF_CONFIG environment variable (see
    # docs/distributed.md); without it this is a one-worker cluster.
    return _cached_strategy(("multiworker",), make)


def _tpu(tpu):
    import tensorflow as tf

    def make():
        # tpu=None lets the resolver read the environment (TPU_NAME, GCE).
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)

    return _cached_strategy(("tpu", tpu), make)


# What keras.distribution.initialize reads when given no arguments; a launcher
# can set them on every host instead of passing arguments.
JAX_CLUSTER_ENV = {
    "coordinator_address": "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "num_processes": "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "process_id": "KERAS_DISTRIBUTION_PROCESS_ID",
}


def _from_env(value, argument, convert=str):
    if value is not None:
        return value
    text = os.environ.get(JAX_CLUSTER_ENV[argument])
    if text is None:
        return None
    try:
        return convert(text)
    except ValueError:
        raise ValueError(
            f"`{JAX_CLUSTER_ENV[argument]}` must be an integer. Received: {text!r}"
        ) from None


def _jax_data_parallel(devices, coordinator_address, num_processes, process_id):
    import jax

    coordinator_address = _from_env(coordinator_address, "coordinator_address")
    num_processes = _from_env(num_processes, "num_processes", int)
    process_id = _from_env(process_id, "process_id", int)
    multi_host = coordinator_address is not None or num_processes is not None
    if multi_host:
        if coordinator_address is None or num_processes is None or process_id is None:
            raise ValueError(
                "Several hosts need `coordinator_address` ('host:port' of process "
                "0), `num_processes` and `process_id` together. Received: "
                f"coordinator_address={coordinator_address!r}, "
                f"num_processes={num_processes!r}, process_id={process_id!r}"
            )
        if not jax.distributed.is_initialized():
            # keras.distribution.initialize wraps jax.distributed.initialize
            # and also agrees on one random seed over the processes, so every
            # host initialises the same weights.
            keras.distribution.initialize(
                job_addresses=coordinator_address,
                num_processes=num_processes,
                process_id=process_id,
            )
    if devices is not None and len(devices) == 0:
        raise ValueError("`devices` must be a non-empty list or None (all devices).")
    return keras.distribution.DataParallel(devices=devices)


# The documented entry point: `strategy_scope("mirrored")` constructs a
# `StrategyScope`, with the same arguments, positional or by keyword.
strategy_scope = StrategyScope
