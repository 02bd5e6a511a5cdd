"""Appends each evaluation's metrics to a JSON-lines file in the workdir."""

import json
import os
import time

from keras_lm.training.callbacks.step_callback import StepCallback


class MetricsLogger(StepCallback):
    """Writes one JSON line per evaluation: step, seconds since the run started, Keras logs.

    `workdir/metrics.jsonl` is the plain-text record of a run that experiments and plots read
    (TensorBoard's files are for browsing). A resumed run appends to the same file; its
    `elapsed_s` continues from the last line, so time axes stay monotonic.

    Args:
        path: the file to append to.
        initial_step: int, the step training starts from.
    """

    def __init__(self, path, initial_step=0):
        super().__init__(initial_step=initial_step)
        self.path = str(path)
        self._offset = 0.0
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                lines = [line for line in f if line.strip()]
            if lines:
                self._offset = float(json.loads(lines[-1]).get("elapsed_s", 0.0))

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        record = {"step": self.step,
                  "elapsed_s": round(self._offset + time.perf_counter() - self._start, 3)}
        record.update({k: float(v) for k, v in (logs or {}).items()})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
