import keras
import numpy as np
import tensorflow as tf

from keras_lm.training import AdamW


class TableLayer(keras.layers.Layer):
    """An embedding-like layer whose table is not called "embeddings"."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=(5, 3), name="table")


def build_mixed_model():
    """Embedding, LayerNorm, Dense(+bias) and a custom position table."""
    inputs = keras.Input((4,), dtype="int32")
    hidden = keras.layers.Embedding(10, 3, name="tokens")(inputs)  # layer name lacks "embedding"
    hidden = keras.layers.LayerNormalization(name="norm")(hidden)
    outputs = keras.layers.Dense(6, name="proj")(hidden)
    model = keras.Model(inputs, outputs)
    position = TableLayer(name="position_embedding")
    position.build(None)
    return model, position


def test_decay_only_on_matrices_that_are_not_embeddings():
    model, position = build_mixed_model()
    optimizer = AdamW()
    decays = {v.path: optimizer.decays(v) for v in model.trainable_variables + position.weights}
    assert decays == {
        "tokens/embeddings": False,  # matched by its name, "embeddings"
        "norm/gamma": False,
        "norm/beta": False,
        "proj/kernel": True,
        "proj/bias": False,
        "position_embedding/table": False,  # matched by its layer's name
    }


def test_zero_gradient_step_decays_only_the_dense_kernel():
    model, position = build_mixed_model()
    variables = model.trainable_variables + position.weights
    for variable in variables:  # Nonzero everywhere, so an unwanted decay would show.
        variable.assign(np.random.default_rng(0).uniform(0.5, 1.5, variable.shape))
    before = {v.path: np.array(v.numpy()) for v in variables}
    learning_rate, weight_decay = 0.1, 0.5
    optimizer = AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    optimizer.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in variables])
    for variable in variables:
        old = before[variable.path]
        expected = (
            old - learning_rate * weight_decay * old if variable.path == "proj/kernel" else old
        )
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, err_msg=variable.path)


def test_custom_no_decay_names_and_serialization():
    optimizer = AdamW(learning_rate=1e-3, weight_decay=0.2, no_decay_names=("proj",))
    model, _ = build_mixed_model()
    kernels = {v.path: optimizer.decays(v) for v in model.trainable_variables if v.ndim == 2}
    assert kernels == {"tokens/embeddings": True, "proj/kernel": False}
    revived = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(revived, AdamW)
    assert revived.no_decay_names == ("proj",)
    assert revived.weight_decay == optimizer.weight_decay


def first_step_update(optimizer, ids):
    """One step on Embedding -> sum: the embedding gradient is IndexedSlices with repeats."""
    embedding = keras.layers.Embedding(6, 3)
    embedding.build((None,))
    before = np.array(embedding.embeddings.numpy())
    with tf.GradientTape() as tape:
        outputs = embedding(np.array(ids))
        loss = tf.reduce_sum(outputs * np.arange(1, 4, dtype="float32"))
    gradient = tape.gradient(loss, embedding.embeddings)
    assert isinstance(gradient, tf.IndexedSlices)
    optimizer.apply_gradients([(gradient, embedding.embeddings)])
    return before - embedding.embeddings.numpy(), tf.convert_to_tensor(gradient).numpy()


def test_repeated_tokens_take_one_adam_step_of_size_lr():
    # Adam's first step is lr * g / (|g| + eps) = lr * sign(g) for the *summed* gradient g of a
    # row, however often its token occurs.
    ids = [1, 1, 1, 1, 4]
    update, dense_gradient = first_step_update(AdamW(learning_rate=0.1, weight_decay=0.0), ids)
    np.testing.assert_allclose(update, 0.1 * np.sign(dense_gradient), rtol=1e-5, atol=1e-7)
    # Keras's own AdamW squares the four slices of token 1 separately: its step is 2x too
    # large. If this starts failing, Keras fixed it and our workaround can go.
    stock_update, _ = first_step_update(
        keras.optimizers.AdamW(learning_rate=0.1, weight_decay=0.0), ids
    )
    np.testing.assert_allclose(np.abs(stock_update[1]), 0.2, rtol=1e-5)


def test_clipping_uses_the_norm_of_the_summed_embedding_gradient():
    ids = [
        2,
        2,
        2,
        5,
    ]  # row 2's gradient is 3 * (1, 2, 3): norm sqrt(9 * 14) with row 5's (1, 2, 3)
    optimizer = AdamW(learning_rate=0.1, weight_decay=0.0, epsilon=1.0, global_clipnorm=1.0)
    update, dense_gradient = first_step_update(optimizer, ids)
    clipped = dense_gradient / np.linalg.norm(dense_gradient)
    # Keras's first Adam step: lr * sqrt(1 - b2) * g / (sqrt(1 - b2) * |g| + eps), on the
    # clipped gradient (epsilon=1 makes it depend on the gradient's scale).
    root = np.sqrt(1 - optimizer.beta_2)
    expected = 0.1 * root * clipped / (root * np.abs(clipped) + 1.0)
    np.testing.assert_allclose(update, expected, rtol=1e-5, atol=1e-9)


def _train_steps(fused, steps=5, jit_compile=None):
    """A few steps of a model with an embedding (sparse gradient), a norm, a dense layer and
    an unused weight, by `optimizer.apply` (eagerly, or in a `tf.function` with
    `jit_compile`); returns the weights and the optimizer."""
    keras.utils.set_random_seed(0)
    model, position = build_mixed_model()
    unused = keras.Variable(np.ones((2, 2), np.float32), name="unused")  # never gets a gradient
    variables = model.trainable_variables + [unused]
    optimizer = AdamW(learning_rate=0.05, weight_decay=0.3, global_clipnorm=0.5, fused=fused)
    optimizer.build(variables)
    rng = np.random.default_rng(0)

    def step(tokens, target):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(tokens) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)

    if jit_compile is not None:
        step = tf.function(step, jit_compile=jit_compile)
    for _ in range(steps):
        tokens = rng.integers(0, 10, (3, 4)).astype(np.int32)
        target = rng.normal(size=(3, 4, 6)).astype(np.float32)
        step(tokens, target)
    return [v.numpy() for v in variables], optimizer


def test_fused_update_equals_keras_per_variable_update():
    fused_weights, fused = _train_steps(fused=True)
    plain_weights, plain = _train_steps(fused=False)
    assert fused._fused_layout is not None and plain._fused_layout is None
    # Two moment vectors instead of two slots per weight.
    assert len(fused.variables) < len(plain.variables)
    for a, b in zip(fused_weights, plain_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=3e-6)  # float32 rounding, 5 steps
    np.testing.assert_array_equal(fused_weights[-1], np.ones((2, 2)))  # the unused weight
    # The moments agree too, weight by weight.
    flat_m = np.concatenate([m.numpy().ravel() for m in plain._momentums])
    np.testing.assert_allclose(fused._momentum_vector.numpy()[: flat_m.size], flat_m,
                               rtol=1e-4, atol=1e-6)


def test_fused_update_is_the_same_inside_and_outside_xla():
    # Outside XLA the flat update runs as its own XLA function (one kernel); inside an
    # XLA-compiled step it is plain ops that XLA fuses with the rest. Same arithmetic.
    eager_weights, _ = _train_steps(fused=True)
    graph_weights, _ = _train_steps(fused=True, jit_compile=False)
    xla_weights, xla = _train_steps(fused=True, jit_compile=True)
    assert xla._fused_layout is not None
    for a, b, c in zip(eager_weights, graph_weights, xla_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)  # XLA's own model ops
    np.testing.assert_array_equal(xla_weights[-1], np.ones((2, 2)))  # the unused weight


def test_fused_is_off_for_amsgrad_and_can_be_turned_off():
    # (Multi-replica training is covered by tests/training/trainer_test.py's mirrored run,
    # whose loss curve must match the default strategy's, i.e. fused against per-variable.)
    model, _ = build_mixed_model()
    optimizer = AdamW(amsgrad=True)
    optimizer.build(model.trainable_variables)
    assert optimizer._fused_layout is None
    assert AdamW.from_config(AdamW(fused=False).get_config()).fused is False


def test_fused_optimizers_of_different_sizes_in_one_process():
    # The flat update's XLA function is shared by every optimizer; each must keep its own
    # length (a variable passed to it would reuse another optimizer's trace: TF's
    # reduce_retracing bug with resource arguments).
    for width in (3, 7, 3, 5):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width)])
        optimizer = AdamW(learning_rate=0.1, weight_decay=0.0)
        optimizer.build(model.trainable_variables)

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(model(x))
            optimizer.apply(tape.gradient(loss, model.trainable_variables),
                            model.trainable_variables)

        before = model.get_weights()
        step(tf.ones((2, 4)))
        # Adam's first step moves every weight by lr against the gradient's sign (+1 here).
        for new, old in zip(model.get_weights(), before):
            np.testing.assert_allclose(new, old - 0.1, atol=1e-5)
