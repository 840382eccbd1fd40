"""Consistent batch sizes and learning rates across device counts.

One convention everywhere: the dataset is batched at the *global* batch size
(`per_replica_batch_size * num_replicas`); `tf.distribute` splits each batch
over the replicas and `keras.distribution.DataParallel` shards it over the
devices (and, with several processes, over the hosts). The learning rate
follows the linear scaling rule of Goyal et al. 2017 ("Accurate, Large
Minibatch SGD", arXiv 1706.02677), as in Barlow Twins and VICReg, whose
learning rates are quoted per 256 images: `lr = base_lr * global_batch / 256`
(`scale_learning_rate`, the same function as `kps.optimizers.scale_learning_rate`).
"""

# The linear scaling rule lives with the optimizers; re-exported here so that
# everything about batch sizes across devices is in one place.
from keras_pid_ssl.optimizers.schedules import scale_learning_rate  # noqa: F401
from keras_pid_ssl.utils.validation import check_int

REFERENCE_BATCH_SIZE = 256


def global_batch_size(per_replica_batch_size, num_replicas):
    """The batch size to batch the dataset with: per replica times replicas.

    Args:
        per_replica_batch_size: images each device processes per step.
        num_replicas: devices (replicas) in sync, over all hosts.

    Returns:
        `per_replica_batch_size * num_replicas`.

    Example:

    >>> global_batch_size(64, num_replicas=8)
    512
    """
    check_int("per_replica_batch_size", per_replica_batch_size, 1)
    check_int("num_replicas", num_replicas, 1)
    return int(per_replica_batch_size) * int(num_replicas)


def per_replica_batch_size(global_batch_size, num_replicas):
    """The slice of a global batch that each replica processes.

    Args:
        global_batch_size: the dataset's batch size.
        num_replicas: devices (replicas) in sync, over all hosts.

    Returns:
        `global_batch_size // num_replicas`.

    Raises:
        ValueError: if the global batch does not split evenly (uneven slices
            would make replicas disagree on the batch shape, and SSL batch
            statistics need at least 2 rows per replica for batch norm).

    Example:

    >>> per_replica_batch_size(512, num_replicas=8)
    64
    """
    check_int("global_batch_size", global_batch_size, 1)
    check_int("num_replicas", num_replicas, 1)
    if global_batch_size % num_replicas:
        raise ValueError(
            "`global_batch_size` must be a multiple of the number of replicas. "
            f"Received: global_batch_size={global_batch_size}, "
            f"num_replicas={num_replicas}"
        )
    return int(global_batch_size) // int(num_replicas)
