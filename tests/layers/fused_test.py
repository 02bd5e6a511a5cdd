"""The fused bfloat16 kernels: same values and gradients as the plain ops, taken only
outside XLA in reduced precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.layers import LayerNormalization
from keras_lm.layers import fused
from keras_lm.testing import run_layer_test


def _gelu_tanh_and_slope(x):
    """float64 reference: the tanh GELU and its derivative, by the formula."""
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    value = 0.5 * x * (1 + t)
    slope = 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)
    return value, slope


def _value_and_input_gradient(fn, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y, tape.gradient(y, x, output_gradients=upstream)


def test_fused_only_for_reduced_precision_outside_xla():
    bf16 = tf.zeros([2], tf.bfloat16)
    assert fused.use_fused_kernels(bf16)  # eager
    assert fused.use_fused_kernels(tf.zeros([2], tf.float16))
    assert not fused.use_fused_kernels(tf.zeros([2], tf.float32))
    assert tf.function(lambda x: tf.constant(fused.use_fused_kernels(x)))(bf16)  # a graph
    assert not tf.function(lambda x: tf.constant(fused.use_fused_kernels(x)),
                           jit_compile=True)(bf16)  # XLA fuses on its own


def test_gelu_value_and_gradient_against_the_formula(rng):
    x64 = np.concatenate([rng.normal(size=500) * 3, [0.0, -8.0, 8.0, 20.0, -20.0]])
    upstream64 = rng.normal(size=x64.shape)
    x = tf.constant(x64, tf.bfloat16)
    upstream = tf.constant(upstream64, tf.bfloat16)
    x_rounded = x.numpy().astype(np.float64)  # the bfloat16 input the kernel sees
    value, slope = _gelu_tanh_and_slope(x_rounded)
    for run in (lambda f, *a: f(*a), lambda f, *a: tf.function(f)(*a)):  # eager, graph
        y, dx = run(_value_and_input_gradient, fused.gelu_tanh, x, upstream)
        assert y.dtype == tf.bfloat16 and dx.dtype == tf.bfloat16
        # Computed in float32, rounded once to bfloat16 (relative step 2^-8).
        np.testing.assert_allclose(y.numpy().astype(np.float64), value,
                                   rtol=2**-8, atol=1e-6)
        expected_dx = upstream.numpy().astype(np.float64) * slope
        np.testing.assert_allclose(dx.numpy().astype(np.float64), expected_dx,
                                   rtol=2**-8, atol=1e-6)


def test_gelu_is_keras_gelu_in_float32_and_under_xla(rng):
    x32 = tf.constant(rng.normal(size=(3, 7)), tf.float32)
    np.testing.assert_array_equal(fused.gelu_tanh(x32), keras.ops.gelu(x32, approximate=True))
    x = tf.constant(rng.normal(size=(3, 7)), tf.bfloat16)

    @tf.function(jit_compile=True)
    def both(x):
        return fused.gelu_tanh(x), keras.ops.gelu(x, approximate=True)

    ours, reference = both(x)
    np.testing.assert_array_equal(ours.numpy().astype(np.float32),
                                  reference.numpy().astype(np.float32))


def test_fused_gelu_is_more_accurate_than_bfloat16_op_by_op(rng):
    x = tf.constant(rng.normal(size=4000) * 2, tf.bfloat16)
    exact, _ = _gelu_tanh_and_slope(x.numpy().astype(np.float64))
    fused_error = np.abs(fused.gelu_tanh(x).numpy().astype(np.float64) - exact).mean()
    plain = keras.ops.gelu(x, approximate=True).numpy().astype(np.float64)
    assert fused_error < np.abs(plain - exact).mean()


def _norm_outputs(layer, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    grads = tape.gradient(y, [x, layer.gamma, layer.beta], output_gradients=upstream)
    return [y] + grads


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_layer_norm_matches_keras_value_and_gradients(rng, dtype):
    x = tf.constant(rng.normal(size=(3, 5, 48)) * 3 + 1, dtype)
    upstream = tf.constant(rng.normal(size=(3, 5, 48)), dtype)
    policy = "mixed_" + dtype
    ours = LayerNormalization(epsilon=1e-5, dtype=policy)
    reference = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy)
    for layer in (ours, reference):
        layer.build(x.shape)
    ours.gamma.assign(rng.normal(size=48).astype("float32"))
    ours.beta.assign(rng.normal(size=48).astype("float32"))
    reference.set_weights(ours.get_weights())
    for run in (lambda f, *a: f(*a), lambda f, *a: tf.function(f)(*a)):
        got = run(_norm_outputs, ours, x, upstream)
        want = run(_norm_outputs, reference, x, upstream)
        for name, a, b in zip(["y", "dx", "dgamma", "dbeta"], got, want):
            assert a.dtype == b.dtype, name
            # Both compute in float32; one rounding to the input dtype apart at most.
            a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
            np.testing.assert_allclose(a, b, rtol=2**-7, atol=1e-2 * np.abs(b).max(),
                                       err_msg=name)


def test_layer_norm_against_the_formula_in_float64(rng):
    x = tf.constant(rng.normal(size=(4, 16)) * 2 - 3, tf.bfloat16)
    gamma, beta = rng.normal(size=16), rng.normal(size=16)
    y = fused.layer_norm(x, tf.constant(gamma, tf.float32), tf.constant(beta, tf.float32), 1e-5)
    x64 = x.numpy().astype(np.float64)
    mean, var = x64.mean(-1, keepdims=True), x64.var(-1, keepdims=True)
    expected = (x64 - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(y.numpy().astype(np.float64), expected, rtol=2**-8, atol=2e-2)


def test_layer_norm_gradient_against_finite_differences(rng):
    """The hand-written backward in float16 inputs against central differences of the
    float64 formula (independent of TensorFlow's autodiff)."""
    x64 = rng.normal(size=(2, 8))
    gamma, beta = rng.normal(size=8), rng.normal(size=8)
    upstream = rng.normal(size=(2, 8))

    def loss(x, g, b):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return np.sum(((x - mean) / np.sqrt(var + 1e-5) * g + b) * upstream)

    x = tf.constant(x64, tf.float16)
    x64 = x.numpy().astype(np.float64)
    g_t, b_t = tf.constant(gamma, tf.float32), tf.constant(beta, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([x, g_t, b_t])
        y = fused.layer_norm(x, g_t, b_t, 1e-5)
    dx, dg, db = tape.gradient(y, [x, g_t, b_t], output_gradients=tf.constant(upstream, tf.float16))
    eps = 1e-6
    for got, arg in ((dx, 0), (dg, 1), (db, 2)):
        args = [x64, gamma, beta]
        numeric = np.zeros_like(args[arg])
        for index in np.ndindex(args[arg].shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[arg][index] += eps
            minus[arg][index] -= eps
            numeric[index] = (loss(*plus) - loss(*minus)) / (2 * eps)
        # float16 upstream and dx: about 3 significant digits.
        np.testing.assert_allclose(np.asarray(got, np.float64), numeric, rtol=1e-2,
                                   atol=1e-2 * np.abs(numeric).max())


def test_layer_norm_falls_back_to_keras_where_not_fusible(rng):
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    for kwargs in (dict(axis=1), dict(center=False), dict(scale=False)):
        ours = LayerNormalization(dtype="mixed_bfloat16", **kwargs)
        reference = keras.layers.LayerNormalization(dtype="mixed_bfloat16", **kwargs)
        ours.build(x.shape)
        reference.build(x.shape)
        np.testing.assert_array_equal(np.asarray(ours(x), np.float32),
                                      np.asarray(reference(x), np.float32))


def test_layer_norm_contract(rng):
    run_layer_test(LayerNormalization, {"epsilon": 1e-5},
                   rng.normal(size=(2, 3, 4)).astype("float32"),
                   expected_output_shape=(2, 3, 4), mixed_precision_atol=5e-2)


def test_layer_norm_takes_the_fused_path_only_where_it_should(rng, monkeypatch):
    from keras_lm.layers import layer_normalization

    calls = []

    def counting(*args):
        calls.append(args[0].dtype)
        return fused.layer_norm(*args)

    monkeypatch.setattr(layer_normalization, "layer_norm", counting)
    x = tf.constant(rng.normal(size=(2, 3, 4)), tf.bfloat16)  # as from a bfloat16 layer
    mixed = dict(dtype="mixed_bfloat16")
    cases = [  # (call, fused?)
        (lambda: LayerNormalization(**mixed)(x), True),  # eager
        (lambda: tf.function(LayerNormalization(axis=2, **mixed))(x), True),  # 2 = last
        (lambda: LayerNormalization(**mixed)(tf.cast(x, tf.float32)), False),  # float32 in
        (lambda: tf.function(LayerNormalization(**mixed), jit_compile=True)(x), False),  # XLA
        (lambda: LayerNormalization()(tf.cast(x, tf.float32)), False),  # float32
        # A float32 layer given bfloat16 (Keras does not cast a norm's input) returns
        # float32 computed from it: Keras's path.
        (lambda: LayerNormalization()(x), False),
    ]
    for index, (call, expect_fused) in enumerate(cases):
        before = len(calls)
        call()
        assert (len(calls) > before) == expect_fused, index
    assert set(calls) == {tf.bfloat16}
    y, expected = LayerNormalization()(x), keras.layers.LayerNormalization()(x)
    assert y.dtype == expected.dtype == tf.float32
    np.testing.assert_array_equal(y, expected)


def test_fused_kernels_survive_a_saved_model_round_trip(rng, tmp_path):
    # A bfloat16 model exported through a plain (non-XLA) signature carries the fused
    # functions and their gradients into the SavedModel.
    norm = LayerNormalization(dtype="mixed_bfloat16")
    norm.build((None, 6))

    class Module(tf.Module):
        def __init__(self):
            self.norm = norm

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.bfloat16)])
        def serve(self, x):
            return tf.cast(fused.gelu_tanh(self.norm(x)), tf.float32)

    module = Module()
    x = tf.constant(rng.normal(size=(3, 6)), tf.bfloat16)
    expected = module.serve(x)
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))  # kept: its variables live with it
    np.testing.assert_array_equal(loaded.serve(x), expected)
    reference = keras.ops.gelu(keras.layers.LayerNormalization(dtype="float32")(
        tf.cast(x, tf.float32)), approximate=True)
    np.testing.assert_allclose(expected, reference, atol=3e-2)  # bfloat16 rounding
