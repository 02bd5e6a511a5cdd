import keras
import numpy as np
import pytest

from keras_lm.training import AdamW
from keras_lm.training import compile_for_training


class CountingModel(keras.Model):
    """A linear model that counts how often Keras traces its train step."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)
        self.traces = 0

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        self.traces += 1  # Python side effect: runs once per trace, not per step
        return super().train_step(data)


def _trained(prebuild):
    keras.utils.set_random_seed(0)
    model = CountingModel()
    model(np.zeros((1, 4), np.float32))
    optimizer = AdamW(learning_rate=0.1, weight_decay=0.1)
    if prebuild:
        compile_for_training(model, optimizer, "mse", jit_compile=False)
    else:
        model.compile(optimizer=optimizer, loss="mse", jit_compile=False)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    history = model.fit(x, x[:, :3] * 2.0, batch_size=4, epochs=2, verbose=0, shuffle=False)
    return model, history.history["loss"]


def test_the_step_is_traced_once_and_trains_exactly_like_plain_compile():
    plain, plain_losses = _trained(prebuild=False)
    ours, losses = _trained(prebuild=True)
    # Keras creates Adam's slots inside the first trace, which forces a second trace.
    assert plain.traces == 2
    assert ours.traces == 1
    np.testing.assert_allclose(losses, plain_losses, rtol=1e-6)
    for a, b in zip(ours.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_an_unbuilt_model_is_a_clear_error():
    with pytest.raises(ValueError, match="must be built"):
        compile_for_training(CountingModel(), AdamW(), "mse")
