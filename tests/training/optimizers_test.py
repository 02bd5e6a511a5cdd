import keras
import numpy as np
import pytest

from keras_lm.training import AdamW
from keras_lm.training import WarmupCosineDecay
from keras_lm.training import build_optimizer
from keras_lm.training import default_train_config


def small_model():
    inputs = keras.Input((3,), dtype="int32")
    hidden = keras.layers.Embedding(7, 4, name="token_embedding")(inputs)
    hidden = keras.layers.LayerNormalization(name="norm")(hidden)
    return keras.Model(inputs, keras.layers.Dense(5, name="head")(hidden))


def test_build_optimizer_reads_the_config():
    config = default_train_config()
    config.update(
        dict(
            steps=300,
            learning_rate=2e-3,
            warmup_steps=30,
            min_learning_rate=1e-5,
            weight_decay=0.05,
            beta_1=0.8,
            beta_2=0.95,
            epsilon=1e-6,
            grad_clip_norm=0.5,
        )
    )
    optimizer = build_optimizer(config)
    assert isinstance(optimizer, AdamW)
    schedule = keras.saving.deserialize_keras_object(optimizer.get_config()["learning_rate"])
    assert isinstance(schedule, WarmupCosineDecay)
    assert schedule.get_config() == {
        "peak_learning_rate": 2e-3,
        "warmup_steps": 30,
        "decay_steps": 300,
        "final_learning_rate": 1e-5,
    }
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.8, 0.95, 1e-6)
    assert optimizer.weight_decay == pytest.approx(0.05)
    assert optimizer.global_clipnorm == 0.5
    assert build_optimizer({"grad_clip_norm": 0.0}).global_clipnorm is None
    assert build_optimizer({"grad_clip_norm": None}).global_clipnorm is None


def test_zero_gradients_shrink_only_the_dense_kernel_by_lr_times_wd():
    model = small_model()
    for variable in model.trainable_variables:
        variable.assign(np.random.default_rng(1).uniform(0.5, 1.5, variable.shape))
    before = [np.array(v.numpy()) for v in model.trainable_variables]
    config = {"learning_rate": 0.1, "warmup_steps": 4, "weight_decay": 0.3, "steps": 100}
    optimizer = build_optimizer(config)
    learning_rate = 0.1 * 1 / 4  # step 0 of a 4-step warmup
    zeros = [np.zeros(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply_gradients(zip(zeros, model.trainable_variables))
    for variable, old in zip(model.trainable_variables, before):
        if variable.path == "head/kernel":
            np.testing.assert_allclose(variable.numpy(), old - learning_rate * 0.3 * old, rtol=1e-6)
        else:  # embedding table, norm gamma/beta, dense bias
            np.testing.assert_array_equal(variable.numpy(), old, err_msg=variable.path)


def one_step(train_config, gradients):
    model = small_model()
    keras.utils.set_random_seed(3)
    for variable in model.trainable_variables:
        variable.assign(np.random.default_rng(2).normal(size=variable.shape))
    optimizer = build_optimizer(train_config)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return [np.array(v.numpy()) for v in model.trainable_variables]


def test_global_norm_clipping_equals_a_step_on_the_clipped_gradient():
    # epsilon=1 makes Adam's first step depend on the gradient's scale (with a tiny epsilon it
    # is lr * sign(g) whatever the scale, and clipping would be invisible).
    base = {"learning_rate": 0.1, "warmup_steps": 0, "weight_decay": 0.0, "epsilon": 1.0}
    shapes = [v.shape for v in small_model().trainable_variables]
    rng = np.random.default_rng(4)
    huge = [1e4 * rng.normal(size=shape).astype("float32") for shape in shapes]
    norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in huge))
    clipped = [g * (2.0 / norm) for g in huge]

    with_clipping = one_step({**base, "grad_clip_norm": 2.0}, huge)
    on_clipped = one_step({**base, "grad_clip_norm": 0.0}, clipped)
    without_clipping = one_step({**base, "grad_clip_norm": 0.0}, huge)
    for a, b in zip(with_clipping, on_clipped):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert max(np.max(np.abs(a - b)) for a, b in zip(with_clipping, without_clipping)) > 1e-3
