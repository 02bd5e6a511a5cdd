"""TensorBoard logging with settings cheap enough to leave on."""

import importlib.util

import keras
from absl import logging


def tensorboard_callback(log_dir, update_freq, initial_step=0):
    """A `keras.callbacks.TensorBoard` without profiling, graph or histograms, if installed.

    TensorFlow 2.21 no longer installs the `tensorboard` package, without which
    `tf.summary.scalar` fails mid-training; then this logs a warning and returns None.

    Args:
        log_dir: str, where the event files go (`<workdir>/tensorboard`).
        update_freq: int, steps between batch-level scalar summaries (use `log_every`).
        initial_step: int, optimizer steps already taken (a resumed run): the first batch
            of this `fit` is step initial_step + 1.

    Returns:
        A `keras.callbacks.TensorBoard` (batch summaries are indexed by the optimizer step, so a
        resumed run continues the same curves), or None without the `tensorboard` package.

    Example:

    >>> callbacks = [tensorboard_callback(os.path.join(workdir, "tensorboard"), 100)]
    """
    if importlib.util.find_spec("tensorboard") is None:
        logging.warning(
            "TensorBoard summaries are off: the `tensorboard` package is not installed "
            "(pip install tensorboard)."
        )
        return None
    return _TensorBoard(
        log_dir=str(log_dir),
        update_freq=int(update_freq),
        histogram_freq=0,
        write_graph=False,
        write_images=False,
        profile_batch=0,
        initial_step=initial_step,
    )


class _TensorBoard(keras.callbacks.TensorBoard):
    """Writes every epoch's summaries, and numbers batches from the resumed step.

    Keras numbers the batch summaries from 1 in every `fit` call, so a resumed run would
    draw its curves again from step 1; here they continue at `initial_step` + 1.

    Keras 3.15 writes the epoch summaries (`epoch_loss`, ...) inside the
    `record_if(step % update_freq == 0)` context it opened for the last *batch*, so with an
    integer `update_freq` an epoch's summaries are dropped whenever the batch count at its
    end is not a multiple of `update_freq` (e.g. every other evaluation with
    `eval_every=250`, `log_every=100`).
    """

    def __init__(self, initial_step=0, **kwargs):
        super().__init__(**kwargs)
        self._initial_step = int(initial_step)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = self._initial_step  # the next batch is initial_step + 1

    def _log_epoch_metrics(self, epoch, logs):
        with self.summary.record_if(True):
            super()._log_epoch_metrics(epoch, logs)
