import glob
import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from keras_lm.training import tensorboard_callback

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="the tensorboard package is absent"
)


def _epoch_steps(directory, tag):
    steps = []
    for path in glob.glob(str(directory / "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


def test_every_epoch_is_logged_whatever_the_batch_count(tmp_path):
    # 5 batches an epoch, batch summaries every 2: Keras's own callback writes the epoch
    # summaries only when the batch count at the epoch's end is even (epochs 1 and 3).
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    callback = tensorboard_callback(tmp_path, update_freq=2)
    model.fit(x, x[:, :1], batch_size=2, epochs=4, validation_data=(x[:3], x[:3, :1]),
              callbacks=[callback], verbose=0)
    assert _epoch_steps(tmp_path / "train", "epoch_loss") == [0, 1, 2, 3]
    assert _epoch_steps(tmp_path / "validation", "epoch_loss") == [0, 1, 2, 3]
    # Batch summaries still follow update_freq (every 2nd of the 20 batches).
    assert len(_epoch_steps(tmp_path / "train", "batch_loss")) == 10


def test_a_resumed_run_continues_the_batch_curve(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    model.fit(x, x[:, :1], batch_size=2, epochs=1, verbose=0,
              callbacks=[tensorboard_callback(tmp_path, update_freq=1)])  # steps 1..5
    model.fit(x, x[:, :1], batch_size=2, epochs=1, verbose=0,  # resumed: steps 6..10
              callbacks=[tensorboard_callback(tmp_path, update_freq=1, initial_step=5)])
    assert _epoch_steps(tmp_path / "train", "batch_loss") == list(range(1, 11))
