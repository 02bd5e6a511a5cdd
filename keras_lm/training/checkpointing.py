"""What a training checkpoint holds, independent of how a model nests its layers.

`tf.train.Checkpoint(model=model)` walks Python attributes, and it cannot see inside the
lists Keras 3 wraps (`self.blocks = [...]`): weights held only there would be silently left
out of the checkpoint. keras_lm therefore checkpoints flat lists: every model variable and
every optimizer variable, in Keras's own deterministic order. Any Keras model works,
whatever its structure; a model of a different architecture fails to restore loudly
(shape or count mismatch).
"""

import tensorflow as tf


def model_checkpoint(model, **extra):
    """A `tf.train.Checkpoint` of the model's variables (and optimizer's, if compiled).

    Args:
        model: a built Keras model.
        **extra: further trackables to save alongside (e.g. step counters).
    """
    objects = {"model_variables": list(model.variables)}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        objects["optimizer_variables"] = list(optimizer.variables)
    objects.update(extra)
    return tf.train.Checkpoint(**objects)
