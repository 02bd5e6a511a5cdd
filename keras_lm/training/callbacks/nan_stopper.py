"""Stops training at the first non-finite loss, before it can be checkpointed."""

import math

from absl import logging

from keras_lm.training.callbacks.step_callback import StepCallback


class NaNStopper(StepCallback):
    """Raises `FloatingPointError` as soon as the training loss is NaN or infinite.

    Keras's `TerminateOnNaN` only sets `stop_training`, after which Keras still validates and
    runs `on_epoch_end`, where a checkpoint callback would save the diverged weights over good
    ones. Raising ends `fit` at once: checkpoints already written stay the latest, so the
    workdir resumes from the last finite state. Place it before any checkpoint callback.

    The loss Keras reports is the running mean since the epoch began, so it stays non-finite
    once any step was.

    Args:
        initial_step: int, the step training starts from (for the message).

    Example:

    >>> model.fit(..., callbacks=[NaNStopper(), CheckpointCallback(directory)])
    """

    def on_step_end(self, step, logs):
        self._check(step, logs.get("loss"))

    def on_epoch_end(self, epoch, logs=None):
        self._check(self.step, (logs or {}).get("loss"))

    def _check(self, step, loss):
        if loss is None or math.isfinite(float(loss)):
            return
        message = (
            f"Training diverged: the loss is {float(loss)} at step {step}. Checkpoints already "
            "written were kept and the run can resume from the last one. Lower the learning rate "
            "(train.learning_rate), lengthen the warmup (train.warmup_steps) or clip gradients "
            "(train.grad_clip_norm, e.g. 1.0); with mixed_float16 try mixed_bfloat16."
        )
        logging.error(message)
        raise FloatingPointError(message)
