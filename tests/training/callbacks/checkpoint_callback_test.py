import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.training import CheckpointCallback
from keras_lm.training.checkpointing import model_checkpoint

from .. import tiny_lm


def compiled_model():
    model = tiny_lm.build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        jit_compile=False,
    )
    model.optimizer.build(model.trainable_variables)
    return model


def state(model):
    return [np.array(v.numpy()) for v in model.weights + model.optimizer.variables]


def test_keeps_last_n_and_the_best_and_restores_everything(tmp_path):
    directory = tmp_path / "checkpoints"
    model = compiled_model()
    callback = CheckpointCallback(directory, keep=2)
    assert callback.restore(model) == 0 and callback.latest_checkpoint is None
    callback.set_model(model)
    val_losses = [3.0, 2.0, 2.5, float("nan"), 2.2]
    saved_states = {}
    for epoch, val_loss in enumerate(val_losses):
        callback.on_epoch_begin(epoch)
        for batch in range(3):  # stand-in for training steps
            for variable in model.trainable_variables:
                variable.assign_add(np.full(variable.shape, 0.01, "float32"))
            model.optimizer.iterations.assign_add(1)
            callback.on_train_batch_end(batch, {})
        callback.on_epoch_end(epoch, {"val_loss": val_loss})
        saved_states[callback.step] = state(model)

    assert tf.train.get_checkpoint_state(directory).all_model_checkpoint_paths == [
        str(directory / "ckpt-12"),
        str(directory / "ckpt-15"),
    ]
    best = tf.train.get_checkpoint_state(directory / "best").all_model_checkpoint_paths
    assert best == [str(directory / "best" / "ckpt-6")]  # 2.0 at step 6 stays the best

    fresh = compiled_model()
    resumed = CheckpointCallback(directory, keep=2)
    assert resumed.restore(fresh) == 15
    assert resumed.best == 2.0
    for restored, saved in zip(state(fresh), saved_states[15]):
        np.testing.assert_array_equal(restored, saved)
    assert int(fresh.optimizer.iterations.numpy()) == 15

    # The best checkpoint holds the state of step 6.
    other = compiled_model()
    model_checkpoint(other).restore(best[0]).expect_partial()
    for restored, saved in zip(state(other), saved_states[6]):
        np.testing.assert_array_equal(restored, saved)


def test_without_monitor_value_no_best_checkpoint(tmp_path):
    model = compiled_model()
    callback = CheckpointCallback(tmp_path, keep=1)
    callback.restore(model)
    callback.on_epoch_end(0, {"loss": 1.0})
    assert tf.train.latest_checkpoint(tmp_path).endswith("ckpt-0")
    assert not os.path.exists(tmp_path / "best")
    assert math.isinf(callback.best)


def test_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="keep"):
        CheckpointCallback(tmp_path, keep=0)


def test_an_optimizer_layout_mismatch_is_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    from keras_lm.training import AdamW

    def with_adamw(fused):
        model = tiny_lm.build_model()
        model.compile(optimizer=AdamW(fused=fused), loss="sparse_categorical_crossentropy")
        model.optimizer.build(model.trainable_variables)
        return model

    directory = tmp_path / "checkpoints"
    writer = CheckpointCallback(directory, keep=2)
    per_weight = with_adamw(fused=False)
    writer.restore(per_weight)
    writer.set_model(per_weight)
    writer.on_epoch_begin(0)
    writer.on_train_batch_end(0, {})
    writer.on_epoch_end(0, {"val_loss": 1.0})
    saved = writer.latest_checkpoint
    with pytest.raises(ValueError, match="fused_optimizer=False"):
        CheckpointCallback(directory, keep=2).restore(with_adamw(fused=True))
    assert CheckpointCallback(directory, keep=2).latest_checkpoint == saved
    # The fix the message names works: the same layout resumes.
    assert CheckpointCallback(directory, keep=2).restore(with_adamw(fused=False)) == 1


def test_a_checkpoint_of_another_optimizer_layout_gives_a_clear_error(tmp_path):
    """A float32 run resumed with mixed_float16 (a loss-scale optimizer: other variables in
    the optimizer's slots) fails in TensorFlow's restore op, not in a Python check."""
    model = compiled_model()
    callback = CheckpointCallback(tmp_path, keep=1)
    callback.restore(model)
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_loss": 1.0})
    saved = sorted(os.listdir(tmp_path))

    scaled = tiny_lm.build_model()
    scaled.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01)),
                   loss="sparse_categorical_crossentropy", jit_compile=False)
    scaled.optimizer.build(scaled.trainable_variables)
    with pytest.raises(ValueError, match="(?s)Cannot resume from .*mixed_float16"):
        CheckpointCallback(tmp_path, keep=1).restore(scaled)
    assert sorted(os.listdir(tmp_path)) == saved  # the checkpoint is left as it is
