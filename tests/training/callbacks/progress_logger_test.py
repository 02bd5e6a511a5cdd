import re

import keras
import numpy as np

from keras_lm.training import ProgressLogger
from keras_lm.training import StepCallback

from .. import tiny_lm


def compiled_model():
    model = tiny_lm.build_model()
    model.compile(
        optimizer=keras.optimizers.SGD(0.25),
        loss="sparse_categorical_crossentropy",
        jit_compile=False,
    )
    return model


def train_dataset():
    return tiny_lm.make_train_dataset(0, arrays=[np.abs(a) for a in tiny_lm.make_arrays()])


def test_step_callback_counts_global_steps_across_epochs_from_the_initial_step():
    seen = []

    class Record(StepCallback):
        def on_step_end(self, step, logs):
            seen.append(step)

    callback = Record(initial_step=0)
    callback.start_at(30)
    compiled_model().fit(
        train_dataset(), steps_per_epoch=3, epochs=2, callbacks=[callback], shuffle=False, verbose=0
    )
    assert seen == list(range(31, 37))


def test_progress_lines_every_log_every_steps_and_a_final_line():
    lines = []
    logger = ProgressLogger(
        total_steps=16, log_every=4, tokens_per_step=32, initial_step=10, log_fn=lines.append
    )
    model = compiled_model()
    model.fit(
        train_dataset(), steps_per_epoch=3, epochs=2, callbacks=[logger], shuffle=False, verbose=0
    )
    assert lines == logger.lines and len(lines) == 3
    assert [re.match(r"step (\d+)/16 ", line).group(1) for line in lines[:2]] == ["12", "16"]
    fields = re.match(
        r"step 16/16  loss (\S+)  lr (\S+)  ([\d,]+) tokens/s  elapsed (\S+)s$", lines[1]
    )
    assert fields, lines[1]
    assert float(fields.group(2)) == 0.25
    assert int(fields.group(3).replace(",", "")) > 0
    assert lines[2].startswith("done: step 16/16, 6 steps in ")
    assert "tokens/s overall" in lines[2] and "loss " in lines[2]
