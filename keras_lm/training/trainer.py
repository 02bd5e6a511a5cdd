"""The resumable training loop every model family calls."""

import math
import os
import time
import warnings

import keras
import tensorflow as tf
from absl import logging

from keras_lm.host_memory import caching_allocator_hint
from keras_lm.training.callbacks import CheckpointCallback
from keras_lm.training.callbacks import MetricsLogger
from keras_lm.training.callbacks import NaNStopper
from keras_lm.training.callbacks import ProgressLogger
from keras_lm.training.callbacks import StepCallback
from keras_lm.training.callbacks import tensorboard_callback
from keras_lm.training.compile import compile_for_training
from keras_lm.training.config import resolve_train_config
from keras_lm.training.losses import MaskedSparseCrossEntropy
from keras_lm.training.metrics import Perplexity
from keras_lm.training.multi_worker import prepare_for_multi_worker
from keras_lm.training.metrics import token_accuracy
from keras_lm.training.optimizers import build_optimizer
from keras_lm.training.strategy import check_global_batch_size
from keras_lm.training.strategy import create_strategy
from keras_lm.training.strategy import resolve_jit_compile
from keras_lm.training.strategy import set_precision
from keras_lm.training.train_result import TrainResult


def fit(
    *,
    build_model,
    make_train_dataset,
    validation_dataset,
    workdir,
    train_config,
    tokens_per_step,
    loss=None,
    metrics=None,
    extra_callbacks=(),
):
    """Trains a model for `train_config.steps` steps, resuming from `workdir` if it holds a run.

    In order: the global seeds (`keras.utils.set_random_seed(seed)`: Python, NumPy, TF), the
    strategy and precision policy from the config; inside `strategy.scope()`,
    `build_model()`, `compile` (AdamW + warmup-cosine from `build_optimizer`, the loss, weighted
    metrics, `jit_compile` from `resolve_jit_compile`); restore of the newest checkpoint in
    `workdir/checkpoints` (model, optimizer, step); then Keras `fit` on
    `make_train_dataset(step)`.

    Keras epochs are "virtual": one per `eval_every` steps, ending at each multiple of
    `eval_every` and at `steps`, so validation and checkpointing happen every `eval_every` steps
    and the run stops exactly at `steps`, also when `steps` is not a multiple of `eval_every` or
    a run resumes between two multiples.

    Written to `workdir`: `checkpoints/ckpt-<step>` (last `keep_checkpoints`),
    `checkpoints/best/` (lowest val_loss) and `tensorboard/`. The global dtype policy is put
    back as it was when `fit` returns.

    Args:
        build_model: callable with no arguments returning an uncompiled Keras model whose
            variables exist (a functional model, or one called once); it is called inside the
            strategy scope after the precision policy is set.
        make_train_dataset: callable `start_step -> tf.data.Dataset` of global batches
            `(x, y)` or `(x, y, sample_weight)`, beginning with the batch of step
            `start_step` (the batches of steps already trained are skipped, in the same order)
            and yielding at least `steps - start_step` batches (repeat it).
        validation_dataset: finite `tf.data.Dataset` of global batches, or None for no
            validation (then no best checkpoint); with `eval_steps` set, its first
            `eval_steps` batches are used at every evaluation.
        workdir: str or path, the experiment directory; the same workdir resumes.
        train_config: `ConfigDict` or dict of `train` fields (see `default_train_config`).
        tokens_per_step: int, tokens in one global batch, for the tokens/s figures.
        loss: a Keras loss; defaults to `MaskedSparseCrossEntropy()`.
        metrics: list of weighted metrics; defaults to `[token_accuracy(), Perplexity()]`.
        extra_callbacks: more Keras callbacks, run after the built-in ones; `StepCallback`s
            among them are started at the restored step.

    Returns:
        A `TrainResult` (initial and final step, history, wall time, tokens/s, the model).

    Raises:
        FloatingPointError: the loss became NaN/inf (nothing is saved after the last good
            checkpoint).
        ValueError: a bad config value, or a training dataset that ran out early.

    Example:

    >>> result = fit(
    ...     build_model=lambda: gpt.build(config.model),
    ...     make_train_dataset=lambda start: pipeline.train(start_step=start),
    ...     validation_dataset=pipeline.validation(),
    ...     workdir="/tmp/shakespeare",
    ...     train_config=config.train,
    ...     tokens_per_step=config.train.batch_size * config.data.sequence_length,
    ... )
    >>> result.final_step
    5000
    """
    config = resolve_train_config(train_config)
    start_time = time.perf_counter()
    workdir = os.fspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    total_steps, eval_every = config.steps, config.eval_every

    keras.utils.set_random_seed(config.seed)
    strategy = create_strategy(config.strategy, config.tpu)
    jit_compile = resolve_jit_compile(strategy, config.jit_compile, config.precision)
    checkpoints = CheckpointCallback(
        os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints
    )
    previous_policy = keras.config.dtype_policy()
    set_precision(config.precision)
    try:
        with strategy.scope():
            model = build_model()
            if not model.built:
                raise ValueError(
                    "`build_model` must return a model whose variables exist (a functional "
                    "model, or call it once on a batch) so a checkpoint can be restored into "
                    f"it. Received an unbuilt {type(model).__name__}."
                )
            # Also builds the optimizer: its variables must exist for the checkpoint to
            # restore them, and the step is then traced once instead of twice.
            compile_for_training(
                model,
                build_optimizer(config),
                loss if loss is not None else MaskedSparseCrossEntropy(),
                [token_accuracy(), Perplexity()] if metrics is None else list(metrics),
                jit_compile=jit_compile,
            )
            step = checkpoints.restore(model)
            if step >= total_steps:
                logging.info("Nothing to train: restored step %d >= steps %d.", step, total_steps)
                return _result(model, step, step, None, start_time, tokens_per_step)

            for callback in extra_callbacks:
                if isinstance(callback, StepCallback):
                    callback.start_at(step)
            chief = strategy.extended.should_checkpoint
            callbacks = [
                _EpochBoundaries(total_steps, eval_every, initial_step=step),  # first: see class
                NaNStopper(initial_step=step),  # before the checkpoints: never save a NaN state
                ProgressLogger(total_steps, config.log_every, tokens_per_step, initial_step=step),
                checkpoints,
                # Under multi-worker training every worker logs the same (all-reduced)
                # figures: the chief alone writes them to the shared workdir.
                MetricsLogger(os.path.join(workdir, "metrics.jsonl"), initial_step=step)
                if chief else None,
                tensorboard_callback(
                    os.path.join(workdir, "tensorboard"), config.log_every, initial_step=step
                ) if chief else None,
                *extra_callbacks,
            ]
            callbacks = [callback for callback in callbacks if callback is not None]
            logging.info(
                "Training steps %d..%d of %d (%s, %d replica(s), precision %s, jit_compile=%s).",
                step + 1,
                total_steps,
                total_steps,
                type(strategy).__name__,
                strategy.num_replicas_in_sync,
                config.precision,
                jit_compile,
            )
            hint = caching_allocator_hint()
            if hint:
                logging.warning(hint)
            train_dataset = make_train_dataset(step)
            _check_batch_splits(train_dataset, strategy)
            if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
                prepare_for_multi_worker(model, strategy)
            with warnings.catch_warnings():
                # Keras warns "Your input ran out of data; interrupting training" whenever a
                # dataset of unknown length ends, the finite validation set at every
                # evaluation included: expected there. Training data that runs out is an
                # error of its own (_EpochBoundaries), so the warning adds nothing.
                warnings.filterwarnings("ignore", message="Your input ran out of data")
                history = model.fit(
                    train_dataset,
                    validation_data=_validation_data(validation_dataset, config.eval_steps),
                    steps_per_epoch=eval_every,
                    initial_epoch=step // eval_every,
                    epochs=math.ceil(total_steps / eval_every),
                    callbacks=callbacks,
                    shuffle=False,  # The data module orders the batches; resume needs it.
                    verbose=0,
                )
            return _result(model, step, callbacks[0].step, history, start_time, tokens_per_step)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _check_batch_splits(dataset, strategy):
    """A clear error when the dataset's (static) global batch does not split over the replicas.

    Keras would otherwise fail at the first step with "Inputs to operation AddN ... must have
    the same size and shape".
    """
    leading = [spec.shape[0] for spec in tf.nest.flatten(dataset.element_spec)
               if hasattr(spec, "shape") and spec.shape.rank]
    if leading and isinstance(leading[0], int):
        check_global_batch_size(strategy, leading[0])


def _validation_data(dataset, eval_steps):
    if dataset is None:
        return None
    if eval_steps:
        # The same first batches every time: val_loss stays comparable between evaluations.
        return _without_autotune(dataset.take(eval_steps))
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "`validation_dataset` is infinite (repeated) and train config `eval_steps` is None: "
            "validation would never end. Pass a finite dataset or set eval_steps."
        )
    return _without_autotune(dataset)


def _without_autotune(dataset):
    """`dataset` with tf.data's autotuning off (validation: a new iterator every evaluation).

    In TensorFlow 2.21 deleting an iterator waits for the autotuner's next tick, 10 ms x
    (2^k - 1) after the iterator was made (1.27, 2.55, 5.11, 10.23 s): an evaluation of
    0.6 s took 0.6 to 12 s in the demo run. Validation sets are small and read once per
    evaluation, so tuning buys nothing there (experiments/benchmarks.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _result(model, initial_step, final_step, history, start_time, tokens_per_step):
    wall_time = time.perf_counter() - start_time
    logs = {} if history is None else history.history
    return TrainResult(
        initial_step=initial_step,
        final_step=final_step,
        history={name: [float(value) for value in values] for name, values in logs.items()},
        wall_time_s=wall_time,
        tokens_per_second=tokens_per_step * (final_step - initial_step) / max(wall_time, 1e-9),
        model=model,
    )


class _EpochBoundaries(StepCallback):
    """Ends each Keras epoch at the next multiple of `eval_every`, or at `total_steps`.

    `fit` runs `steps_per_epoch=eval_every` batches an epoch, which already ends epochs on the
    multiples when a run starts at one. The last epoch of a run whose `steps` is not a multiple,
    and the first epoch of a run resumed between multiples, are shorter: this callback sets
    `stop_training` at their end, which makes Keras leave the epoch, validate and call
    `on_epoch_end` (checkpoint), and then clears it again unless the run is done. It must come
    first in the callback list, so that a later callback's `stop_training` stands.

    It also refuses epochs that end elsewhere: the training dataset ran out, and Keras would
    otherwise start it again from the beginning and train on batches twice.
    """

    def __init__(self, total_steps, eval_every, initial_step):
        super().__init__(initial_step=initial_step)
        self.total_steps = total_steps
        self.eval_every = eval_every
        self._stopped = False

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch_end = min(
            (self.step // self.eval_every + 1) * self.eval_every, self.total_steps
        )
        self._stopped = False

    def on_step_end(self, step, logs):
        if step == self._epoch_end:
            self.model.stop_training = True
            self._stopped = True

    def on_epoch_end(self, epoch, logs=None):
        if self.step != self._epoch_end:
            raise ValueError(
                f"The training dataset ended after step {self.step}, before step "
                f"{self._epoch_end}: `make_train_dataset(start_step)` must yield at least "
                "`steps - start_step` batches (e.g. `.repeat()` it)."
            )
        if self._stopped and self.step < self.total_steps:
            self.model.stop_training = False
