"""Two work-arounds that let Keras 3's `fit` train under `MultiWorkerMirroredStrategy`.

Keras 3.15's TensorFlow trainer fails twice under a multi-worker strategy
(keras-team/keras#20585, #20329), whatever the model:

1. `fit` builds the model from a batch it first averages over the replicas with
   `strategy.reduce("MEAN", batch)`; a multi-worker strategy cannot reduce a nested batch
   (features, labels, weights): "Attempt to convert a value ({...: PerReplica ...}) ... to a
   Tensor".
2. Each step's logs (scalar metric results) are averaged with
   `strategy.reduce("MEAN", value, axis=0)`: "Invalid reduction dimension 0 for input with 0
   dimensions".

`prepare_for_multi_worker` builds the model from this worker's first replica batch (the build
needs shapes and dtypes only; integer ids stay integers) and averages scalar logs over the
replicas (`axis=None`). Everything else (the all-reduced gradients, the optimizer) is Keras's
and TensorFlow's own.
"""

import keras
import tensorflow as tf
from keras import tree

# The two work-arounds replace private parts of Keras's TensorFlow trainer (checked with Keras
# 3.15). A Keras that moved them still imports keras_lm; only multi-worker training then
# stops, with an error that says why (`prepare_for_multi_worker`).
try:
    from keras.src.backend.tensorflow import trainer as tf_trainer

    _keras_reduce_per_replica = tf_trainer.reduce_per_replica
    _is_multi_worker = tf_trainer._collective_all_reduce_multi_worker
    _PRIVATE_API_ERROR = None
except (ImportError, AttributeError) as error:  # pragma: no cover - depends on Keras
    tf_trainer = _keras_reduce_per_replica = _is_multi_worker = None
    _PRIVATE_API_ERROR = error
_PRIVATE_MODEL_METHODS = ("_symbolic_build", "_maybe_symbolic_build")


def prepare_for_multi_worker(model, strategy):
    """Lets `model.fit` run under the multi-worker `strategy` (see the module docstring).

    Args:
        model: the compiled Keras model, built inside `strategy.scope()`.
        strategy: a `tf.distribute.MultiWorkerMirroredStrategy`.

    Raises:
        RuntimeError: this Keras lacks the private trainer functions the work-arounds replace.
    """
    missing = [name for name in _PRIVATE_MODEL_METHODS if not hasattr(model, name)]
    if _PRIVATE_API_ERROR is not None or missing:
        raise RuntimeError(
            f"Multi-worker training with Keras {keras.__version__} is not supported: keras_lm "
            "works around two Keras bugs under MultiWorkerMirroredStrategy by replacing parts "
            "of Keras's TensorFlow trainer, and this Keras lacks "
            f"{_PRIVATE_API_ERROR or ', '.join(f'Model.{name}' for name in missing)}. Install "
            "the Keras it was tested with (pip install 'keras==3.15.*'), or train with "
            "strategy='mirrored' on one machine."
        )

    def local_value(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local_value, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = _reduce_per_replica


def _reduce_per_replica(values, strategy, reduction):
    """Keras's `reduce_per_replica`, with scalars averaged over all replicas of all workers."""
    if reduction != "auto" or not _is_multi_worker(strategy):
        return _keras_reduce_per_replica(values, strategy, reduction)

    def reduce(value):
        if value is not None and value.shape.rank == 0:
            return strategy.reduce("MEAN", value, axis=None)
        return _keras_reduce_per_replica(value, strategy, reduction)

    return tree.map_structure(reduce, values)
