"""Multi-device and multi-host training (see docs/distributed.md).

`strategy_scope(name)` sets up `tf.distribute` (TensorFlow) or
`keras.distribution` (JAX); `gather_replicas` and `scale_loss_for_replicas`
make SSL losses see the global batch with single-device gradients; the
scaling helpers keep batch sizes and learning rates consistent.
"""

from keras_pid_ssl.distribute.replicas import gather_replicas
from keras_pid_ssl.distribute.replicas import num_replicas_in_sync
from keras_pid_ssl.distribute.replicas import scale_loss_for_replicas
from keras_pid_ssl.distribute.replicas import sum_over_replicas
from keras_pid_ssl.distribute.scaling import REFERENCE_BATCH_SIZE
from keras_pid_ssl.distribute.scaling import global_batch_size
from keras_pid_ssl.distribute.scaling import per_replica_batch_size
from keras_pid_ssl.distribute.scaling import scale_learning_rate
from keras_pid_ssl.distribute.strategy import STRATEGY_NAMES
from keras_pid_ssl.distribute.strategy import StrategyScope
from keras_pid_ssl.distribute.strategy import strategy_scope

__all__ = [
    "gather_replicas",
    "num_replicas_in_sync",
    "scale_loss_for_replicas",
    "sum_over_replicas",
    "REFERENCE_BATCH_SIZE",
    "global_batch_size",
    "per_replica_batch_size",
    "scale_learning_rate",
    "STRATEGY_NAMES",
    "StrategyScope",
    "strategy_scope",
]
