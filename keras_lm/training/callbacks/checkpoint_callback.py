"""Periodic and best-so-far checkpoints of model, optimizer and step, with resume."""

import math
import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from keras_lm.training.callbacks.step_callback import StepCallback
from keras_lm.training.checkpointing import model_checkpoint


class CheckpointCallback(StepCallback):
    """Saves model + optimizer + step at every epoch end; keeps the last N and the best.

    Two `tf.train.CheckpointManager`s share one `tf.train.Checkpoint`:

    - `directory/ckpt-<step>`: written at every epoch end (every `eval_every` steps in the
      training loop), the last `keep` kept;
    - `directory/best/ckpt-<step>`: written when `monitor` (default `val_loss`) improves,
      one kept.

    The checkpoint holds `model`, `optimizer` (its moments, step counter and, under
    `mixed_float16`, the loss scale), `step` (the global step, which numbers the files) and
    `best` (the best monitored value so far, so a resumed run does not forget it). The manager
    writes the `checkpoint` index file only after the data files, so a run killed while saving
    resumes from the previous complete checkpoint.

    Under `MultiWorkerMirroredStrategy` every worker must save (saving is collective); only the
    chief writes to `directory`, the others to a temporary folder, and all restore from
    `directory`, which must therefore be on a filesystem every worker can read.

    Args:
        directory: str, where the periodic checkpoints go (created if missing).
        keep: int >= 1, periodic checkpoints to keep.
        monitor: str, the epoch log to minimise for the best checkpoint; None disables it.
        initial_step: int, the step training starts from; `restore` sets it.

    Example:

    >>> checkpoints = CheckpointCallback(os.path.join(workdir, "checkpoints"), keep=3)
    >>> step = checkpoints.restore(model)  # 0 when there is nothing to restore
    >>> model.fit(..., initial_epoch=step // eval_every, callbacks=[checkpoints])
    """

    def __init__(self, directory, keep=3, monitor="val_loss", initial_step=0):
        super().__init__(initial_step=initial_step)
        if int(keep) < 1:
            raise ValueError(f"`keep` must be >= 1. Received: keep={keep!r}")
        self.directory = str(directory)
        self.keep = int(keep)
        self.monitor = monitor
        self.best = math.inf
        self._checkpoint = None
        self._model_attached = None
        self._scratch = None  # a non-chief worker's throwaway checkpoint folder
        # Created here, usually outside any strategy scope: plain host variables.
        self._step = tf.Variable(self.step, dtype=tf.int64, trainable=False, name="step")
        self._best = tf.Variable(self.best, dtype=tf.float64, trainable=False, name="best")

    @property
    def latest_checkpoint(self):
        """Path prefix of the newest periodic checkpoint, or None."""
        return tf.train.latest_checkpoint(self.directory)

    def restore(self, model):
        """Restores the newest checkpoint in `directory` into `model` and its optimizer.

        Call it after `compile` with the optimizer built
        (`model.optimizer.build(model.trainable_variables)`), inside the strategy scope.

        Args:
            model: the compiled Keras model that will be trained.

        Returns:
            int, the restored step (0 when there is no checkpoint).
        """
        self._attach(model)
        # Every worker restores from `directory` (shared), also those that save elsewhere.
        path = self.latest_checkpoint
        if path is None:
            return self.step
        try:
            self._checkpoint.restore(path).assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as error:
            raise ValueError(
                f"Cannot resume from {path}: its variables do not match this model and "
                f"optimizer ({error}). The checkpoint is left as it is. Causes: a different "
                "model config; a different train.precision to or from mixed_float16 (its "
                "loss-scale optimizer keeps extra variables); or AdamW's state layout: with "
                "one replica it keeps its moments "
                "as two flat vectors (config.train.fused_optimizer=True), with several "
                "replicas, or fused_optimizer=False, one pair per weight. Resume with the "
                "config and strategy that wrote it (or with --config.train.fused_optimizer="
                "False for a checkpoint written with several replicas or by keras_lm before "
                "the fused optimizer), or train into a new --workdir."
            ) from error
        self.start_at(int(self._step.numpy()))
        self.best = float(self._best.numpy())
        logging.info(
            "Restored %s (step %d, best %s %.4f).", path, self.step, self.monitor, self.best
        )
        return self.step

    def set_model(self, model):
        super().set_model(model)
        self._attach(model)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._step.assign(self.step)
        value = logs.get(self.monitor) if self.monitor else None
        improved = value is not None and math.isfinite(value) and value < self.best
        if improved:
            self.best = float(value)
        self._best.assign(self.best)
        path = self._manager.save(checkpoint_number=self.step)
        logging.info("Saved checkpoint %s.", path)
        if improved:
            path = self._best_manager.save(checkpoint_number=self.step)
            logging.info("Saved best checkpoint %s (%s %.4f).", path, self.monitor, self.best)

    def on_train_end(self, logs=None):
        if self._scratch is not None:  # a non-chief worker's copies: nobody reads them
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
            self._model_attached = None  # a later fit makes a new folder

    def _attach(self, model):
        if self._checkpoint is not None and self._model_attached is model:
            return
        self._model_attached = model
        self._checkpoint = model_checkpoint(model, step=self._step, best=self._best)
        directory = self.directory
        strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
        if not strategy.extended.should_checkpoint:
            if self._scratch is None:
                self._scratch = tempfile.mkdtemp(prefix="keras_lm_worker_checkpoints_")
            directory = self._scratch
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, directory, max_to_keep=self.keep
        )
        self._best_manager = tf.train.CheckpointManager(
            self._checkpoint, os.path.join(directory, "best"), max_to_keep=1
        )
