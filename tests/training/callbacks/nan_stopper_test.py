import keras
import numpy as np
import pytest

from keras_lm.training import NaNStopper


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_raises_naming_the_step_and_the_fixes(bad):
    stopper = NaNStopper(initial_step=40)
    stopper.on_epoch_begin(0)
    stopper.on_train_batch_end(0, {"loss": 2.5})  # finite: nothing happens
    with pytest.raises(FloatingPointError, match=r"at step 42\..*learning rate.*grad_clip_norm"):
        stopper.on_train_batch_end(1, {"loss": bad})


def test_nan_stops_fit_before_epoch_end():
    class BlowUp(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return keras.ops.mean(y_pred, axis=-1) * np.nan

    epochs_ended = []
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss=BlowUp(), jit_compile=False)
    ended = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epochs_ended.append(epoch)
    )
    with pytest.raises(FloatingPointError, match="at step 1"):
        model.fit(
            np.ones((8, 2)),
            np.ones((8, 1)),
            batch_size=4,
            epochs=1,
            callbacks=[NaNStopper(), ended],
            verbose=0,
        )
    assert epochs_ended == []
