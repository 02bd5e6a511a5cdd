"""Base class for callbacks that act on the global optimizer step."""

import keras


class StepCallback(keras.callbacks.Callback):
    """A callback that knows the global training step, also across resumed runs.

    Keras numbers batches within an epoch; the training loop uses epochs of `eval_every`
    steps and resumes mid-run, so subclasses need the global step: `initial_step` (the
    restored step) plus the steps run since. It is counted on the host from Keras's batch
    indices, with no read of the optimizer's step variable (which would wait for the device).
    Subclasses override `on_step_end(step, logs)` instead of `on_train_batch_end`.

    Args:
        initial_step: int, the step training starts from (0, or the restored step).

    Example:

    >>> class PrintStep(StepCallback):
    ...     def on_step_end(self, step, logs):
    ...         print(step, logs["loss"])
    """

    def __init__(self, initial_step=0):
        super().__init__()
        self.initial_step = int(initial_step)
        self.step = self.initial_step
        self._epoch_start_step = self.step

    def start_at(self, step):
        """Makes `step` the starting step (the training loop calls it after restoring)."""
        self.initial_step = self.step = self._epoch_start_step = int(step)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self.step

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1, `batch` is the index of the last step run.
        self.step = self._epoch_start_step + batch + 1
        self.on_step_end(self.step, logs or {})

    def on_step_end(self, step, logs):
        """Called after each training step with the global `step` (1-based) and Keras's logs."""
