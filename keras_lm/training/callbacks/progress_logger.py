"""One log line every few steps: progress, loss, learning rate, throughput."""

import time

from absl import logging
from keras import ops

from keras_lm.training.callbacks.step_callback import StepCallback


class ProgressLogger(StepCallback):
    """Logs `step/total`, loss, learning rate, tokens/s and elapsed time every `log_every` steps.

    tokens/s is measured over the steps since the previous line, leaving out the time spent in
    validation. The first line includes tracing/compilation, so it reads low. A final line
    gives the totals when training ends.

    Args:
        total_steps: int, the configured number of steps (for `step/total`).
        log_every: int, steps between lines.
        tokens_per_step: int, tokens in one global batch (for tokens/s); 0 hides it.
        initial_step: int, the step training starts from (the restored step).
        log_fn: callable taking one string. Defaults to `absl.logging.info`.

    Example:

    >>> model.fit(..., callbacks=[ProgressLogger(5000, log_every=100, tokens_per_step=64 * 256)])
    """

    def __init__(self, total_steps, log_every, tokens_per_step=0, initial_step=0, log_fn=None):
        super().__init__(initial_step=initial_step)
        if int(log_every) < 1:
            raise ValueError(f"`log_every` must be >= 1. Received: log_every={log_every!r}")
        self.total_steps = int(total_steps)
        self.log_every = int(log_every)
        self.tokens_per_step = int(tokens_per_step)
        self.log_fn = log_fn or logging.info
        self.lines = []  # Every line logged, for the caller's summary and for tests.

    def on_train_begin(self, logs=None):
        self._start = self._last_time = time.perf_counter()
        self._last_step = self.step
        self._eval_seconds = 0.0

    def on_test_begin(self, logs=None):
        self._eval_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._eval_seconds += time.perf_counter() - self._eval_start

    def on_step_end(self, step, logs):
        if step % self.log_every and step != self.total_steps:
            return
        now = time.perf_counter()
        seconds = max(now - self._last_time - self._eval_seconds, 1e-9)
        tokens_per_second = self.tokens_per_step * (step - self._last_step) / seconds
        self._last_time, self._last_step, self._eval_seconds = now, step, 0.0
        learning_rate = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self._log(
            f"step {step}/{self.total_steps}  loss {float(logs.get('loss', float('nan'))):.4f}  "
            f"lr {learning_rate:.3e}  {tokens_per_second:,.0f} tokens/s  "
            f"elapsed {now - self._start:.1f}s"
        )

    def on_train_end(self, logs=None):
        elapsed = time.perf_counter() - self._start
        steps = self.step - self.initial_step
        logs = logs or {}
        metrics = "  ".join(f"{name} {float(value):.4f}" for name, value in sorted(logs.items()))
        self._log(
            f"done: step {self.step}/{self.total_steps}, {steps} steps in {elapsed:.1f}s "
            f"({self.tokens_per_step * steps / max(elapsed, 1e-9):,.0f} tokens/s overall)"
            + (f"  {metrics}" if metrics else "")
        )

    def _log(self, line):
        self.lines.append(line)
        self.log_fn(line)
