import keras
import numpy as np

from keras_lm.training.checkpointing import model_checkpoint


class ListModel(keras.Model):
    """Layers held only in a Python list: invisible to tf.train.Checkpoint(model=...)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.stack = [keras.layers.Dense(4, name=f"dense_{i}") for i in range(3)]

    def call(self, x):
        for layer in self.stack:
            x = layer(x)
        return x


def _built(seed):
    keras.utils.set_random_seed(seed)
    model = ListModel()
    model(np.zeros((1, 4), "float32"))
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_every_variable_round_trips(tmp_path):
    model = _built(0)
    model.train_on_batch(np.ones((2, 4), "float32"), np.zeros((2, 4), "float32"))
    path = model_checkpoint(model).write(str(tmp_path / "ckpt"))
    fresh = _built(1)
    model_checkpoint(fresh).read(path).assert_consumed()
    for a, b in zip(model.variables + model.optimizer.variables,
                    fresh.variables + fresh.optimizer.variables):
        np.testing.assert_array_equal(np.array(a), np.array(b), err_msg=a.path)
    assert len(model.trainable_variables) == 6  # the three list-held layers are included
