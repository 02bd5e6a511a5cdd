import json

import keras
import numpy as np

from keras_lm.training import MetricsLogger


def _fit(model, path, initial_step, epochs):
    x = np.ones((8, 2), "float32")
    logger = MetricsLogger(path, initial_step=initial_step)
    model.fit(x, x, validation_data=(x, x), batch_size=4, epochs=epochs, verbose=0,
              callbacks=[logger])


def test_one_line_per_evaluation_and_resume_appends(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    path = tmp_path / "metrics.jsonl"
    _fit(model, path, initial_step=0, epochs=2)
    _fit(model, path, initial_step=4, epochs=1)  # a resumed run continues the file
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert all("val_loss" in r and "loss" in r for r in records)
    elapsed = [r["elapsed_s"] for r in records]
    assert elapsed == sorted(elapsed) and elapsed[2] >= elapsed[1]
