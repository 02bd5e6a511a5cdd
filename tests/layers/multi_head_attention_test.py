import keras
import numpy as np
import pytest

from keras_lm.layers import MultiHeadAttention
from keras_lm.testing import run_layer_test

B, T, S, D, H, DK = 2, 5, 7, 16, 4, 4


def _copy_from_keras(ours, theirs):
    """Gives our layer the weights of a built keras.layers.MultiHeadAttention."""
    pairs = [
        (ours.query_dense, theirs._query_dense),
        (ours.key_dense, theirs._key_dense),
        (ours.value_dense, theirs._value_dense),
        (ours.output_dense, theirs._output_dense),
    ]
    for mine, ref in pairs:
        mine.kernel.assign(ref.kernel)
        mine.bias.assign(ref.bias)


def _numpy_attention(layer, query, value, mask=None):
    """Independent numpy reference: project, repeat shared K/V heads, softmax, project."""
    w = {n: np.array(v) for n, v in zip(["qk", "qb", "kk", "kb", "vk", "vb", "ok", "ob"],
                                          layer.get_weights())}
    q = np.einsum("btd,dhe->bthe", query, w["qk"]) + w["qb"]
    k = np.einsum("bsd,dke->bske", value, w["kk"]) + w["kb"]
    v = np.einsum("bsd,dke->bske", value, w["vk"]) + w["vb"]
    groups = layer.num_heads // layer.num_key_value_heads
    k, v = np.repeat(k, groups, axis=2), np.repeat(v, groups, axis=2)  # (B, S, H, Dk)
    scores = np.einsum("bthe,bshe->bhts", q, k) / np.sqrt(layer.key_dim)
    if mask is not None:
        scores = np.where(mask[:, None], scores, -1e9)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = np.einsum("bhts,bshe->bthe", probs, v)
    return np.einsum("bthe,hed->btd", out, w["ok"]) + w["ob"]


def _decode_with_cache(layer, x, prompt_length, cache_length):
    """Self-attention outputs of x [B, T, D] computed through the KV cache: the first
    `prompt_length` positions in one call, then one position per call."""
    cache = np.zeros((x.shape[0], 2, layer.num_key_value_heads, cache_length, DK), "float32")
    prompt = x[:, :prompt_length]
    out, cache = layer(prompt, prompt, use_causal_mask=True, cache=cache, cache_update_index=0)
    steps = [np.array(out)]
    for t in range(prompt_length, x.shape[1]):
        token = x[:, t:t + 1]
        out, cache = layer(token, token, use_causal_mask=True, cache=cache, cache_update_index=t)
        steps.append(np.array(out))
    return np.concatenate(steps, axis=1)


@pytest.mark.parametrize("num_key_value_heads", [None, H])
@pytest.mark.parametrize("mode", ["self_padding", "self_causal", "cross_padding"])
def test_matches_keras_multi_head_attention(rng, mode, num_key_value_heads):
    query = rng.normal(size=(B, T, D)).astype("float32")
    value = query if mode.startswith("self") else rng.normal(size=(B, S, D)).astype("float32")
    source = value.shape[1]
    padding = np.ones((B, source), bool)
    padding[0, -2:] = False  # the first example's last two keys are padding
    theirs = keras.layers.MultiHeadAttention(num_heads=H, key_dim=DK)
    ours = MultiHeadAttention(num_heads=H, key_dim=DK, num_key_value_heads=num_key_value_heads)
    if mode == "self_causal":
        expected = theirs(query, value, use_causal_mask=True)
        ours(query, value)
        _copy_from_keras(ours, theirs)
        actual = ours(query, value, use_causal_mask=True)
    else:
        full_mask = np.broadcast_to(padding[:, None, :], (B, T, source))
        expected = theirs(query, value, attention_mask=full_mask)
        ours(query, value)
        _copy_from_keras(ours, theirs)
        actual = ours(query, value, attention_mask=padding)
        # A full [B, T, S] mask gives the same result as the padding mask.
        np.testing.assert_allclose(ours(query, value, attention_mask=full_mask), actual,
                                   atol=1e-6)
    np.testing.assert_allclose(np.array(actual), np.array(expected), atol=1e-5)


def test_multi_query_attention_matches_numpy(rng):
    query = rng.normal(size=(B, T, D)).astype("float32")
    value = rng.normal(size=(B, S, D)).astype("float32")
    mask = rng.random((B, T, S)) > 0.3
    layer = MultiHeadAttention(num_heads=H, key_dim=DK, num_key_value_heads=1)
    actual = layer(query, value, attention_mask=mask)
    assert layer.key_dense.kernel.shape == (D, 1, DK)  # one shared key head
    np.testing.assert_allclose(actual, _numpy_attention(layer, query, value, mask), atol=1e-5)


def test_grouped_query_attention_matches_numpy(rng):
    query = rng.normal(size=(B, T, D)).astype("float32")
    layer = MultiHeadAttention(num_heads=H, key_dim=DK, num_key_value_heads=2)
    actual = layer(query, query, use_causal_mask=True)
    causal = np.broadcast_to(np.tril(np.ones((T, T), bool)), (B, T, T))
    np.testing.assert_allclose(actual, _numpy_attention(layer, query, query, causal), atol=1e-5)


@pytest.mark.parametrize("rotary", [None, 10000.0])
@pytest.mark.parametrize("kv_heads", [None, 2])
def test_cached_attention_equals_full(rng, rotary, kv_heads):
    x = rng.normal(size=(B, T, D)).astype("float32")
    layer = MultiHeadAttention(H, DK, num_key_value_heads=kv_heads, rotary_max_wavelength=rotary)
    full = np.array(layer(x, x, use_causal_mask=True))
    # The first two tokens at once, then one token at a time; room to spare in the cache.
    np.testing.assert_allclose(_decode_with_cache(layer, x, 2, T + 3), full, atol=1e-5)


def test_layer_contract(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    run_layer_test(
        MultiHeadAttention,
        dict(num_heads=H, key_dim=DK, num_key_value_heads=2, rotary_max_wavelength=100.0),
        [x, x],
        call_kwargs=dict(use_causal_mask=True),
        expected_output_shape=(B, T, D),
        mixed_precision_atol=0.05,
    )


def test_bad_arguments(rng):
    x = rng.normal(size=(B, T, D)).astype("float32")
    with pytest.raises(ValueError, match="num_key_value_heads"):
        MultiHeadAttention(num_heads=4, key_dim=4, num_key_value_heads=3)
    layer = MultiHeadAttention(num_heads=H, key_dim=DK)
    with pytest.raises(ValueError, match="attention_mask"):
        layer(x, x, attention_mask=np.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match="attention_mask"):
        layer(x, x, attention_mask=np.ones((B, T + 2, T), bool))
    with pytest.raises(ValueError, match="cache_update_index"):
        layer(x, x, cache=np.zeros((B, 2, H, T, DK), "float32"))
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(num_heads=H, key_dim=DK, dropout=1.5)
    for widths in ({"key_dim": 0}, {"key_dim": DK, "value_dim": 0}):
        with pytest.raises(ValueError, match="the width of each head"):
            MultiHeadAttention(num_heads=H, **widths)


@pytest.mark.parametrize("shape", [(B, D), (B, T, 2, D)])
def test_wrong_rank_is_a_clear_error(shape):
    bad = np.zeros(shape, "float32")
    good = np.zeros((B, T, D), "float32")
    with pytest.raises(ValueError, match=r"`query` must have rank 3"):
        MultiHeadAttention(num_heads=H, key_dim=DK)(bad, bad)
    built = MultiHeadAttention(num_heads=H, key_dim=DK)
    built(good, good)
    with pytest.raises(ValueError, match=r"`value` must have rank 3"):
        built(good, bad)


def test_symbolic_call_with_cache_returns_output_and_cache(rng):
    # A symbolic (functional) call with a cache gives (output, new_cache), as eagerly.
    layer = MultiHeadAttention(H, DK, num_key_value_heads=2, output_dim=10)
    x = rng.normal(size=(B, 1, D)).astype("float32")
    cache = rng.normal(size=(B, 2, 2, T, DK)).astype("float32")
    kwargs = dict(use_causal_mask=True, cache_update_index=3)
    eager_out, eager_cache = layer(x, x, cache=cache, **kwargs)
    x_in = keras.Input((1, D), batch_size=B)
    cache_in = keras.Input((2, 2, T, DK), batch_size=B)
    outputs = layer(x_in, x_in, cache=cache_in, **kwargs)
    assert isinstance(outputs, tuple) and len(outputs) == 2
    assert tuple(outputs[0].shape) == (B, 1, 10)
    assert tuple(outputs[1].shape) == (B, 2, 2, T, DK)
    out, new_cache = keras.Model([x_in, cache_in], outputs).predict_on_batch([x, cache])
    np.testing.assert_allclose(out, eager_out, atol=1e-6)
    np.testing.assert_allclose(new_cache, eager_cache, atol=1e-6)


def test_projections_start_different():
    """One unseeded initializer shared by q/k/v would start them identical (Keras 3)."""
    layer = MultiHeadAttention(num_heads=H, key_dim=DK)
    x = np.zeros((1, 2, D), "float32")
    layer(x, x)
    kernels = [np.array(d.kernel).reshape(D, -1) for d in
               (layer.query_dense, layer.key_dense, layer.value_dense)]
    assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])


@pytest.mark.parametrize("kv_heads", [None, 2])
def test_fused_self_attention_projection_equals_the_three_projections(rng, kv_heads):
    # layer(x, x) projects Q, K and V with one matmul over the concatenated kernels; a copy
    # of x as the value takes the path of three separate EinsumDense projections.
    x = rng.normal(size=(B, T, D)).astype("float32")
    layer = MultiHeadAttention(H, DK, num_key_value_heads=kv_heads)
    x_tensor = keras.ops.convert_to_tensor(x)
    fused = np.array(layer(x_tensor, x_tensor, use_causal_mask=True))
    separate = np.array(layer(x_tensor, keras.ops.convert_to_tensor(x.copy()),
                              use_causal_mask=True))
    np.testing.assert_allclose(fused, separate, atol=1e-6)
    query, key, value = layer._project_self(x_tensor)
    np.testing.assert_allclose(query, layer.query_dense(x), atol=1e-6)
    np.testing.assert_allclose(key, layer.key_dense(x), atol=1e-6)
    np.testing.assert_allclose(value, layer.value_dense(x), atol=1e-6)


@pytest.mark.parametrize("kv_heads", [None, 2])
def test_causal_blocks_match_keras_forward_and_backward(rng, kv_heads):
    # 150 positions run as query blocks [0, 64), [64, 128), [128, 150), each attending to
    # the keys up to its end; Keras's layer computes the whole masked score matrix.
    import tensorflow as tf

    from keras_lm.layers.multi_head_attention import causal_block_for

    length = 150
    assert causal_block_for(length) == 64
    x = tf.constant(rng.normal(size=(B, length, D)).astype("float32"))
    padding = np.ones((B, length), bool)
    padding[1, -7:] = False  # the second example ends with 7 padding positions
    theirs = keras.layers.MultiHeadAttention(num_heads=H, key_dim=DK)
    ours = MultiHeadAttention(num_heads=H, key_dim=DK, num_key_value_heads=kv_heads,
                              causal_blocks=True)
    theirs(x, x)
    ours(x, x)
    if kv_heads is None:
        _copy_from_keras(ours, theirs)
    upstream = tf.constant(rng.normal(size=(B, length, D)).astype("float32"))

    def value_and_gradient(fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(x)
            loss = tf.reduce_sum(out * upstream)
        return out.numpy(), tape.gradient(loss, x).numpy()

    out, grad = value_and_gradient(
        lambda t: ours(t, t, attention_mask=padding, use_causal_mask=True))
    mask = np.tril(np.ones((length, length), bool))[None] & padding[:, None, :]
    if kv_heads is None:
        ref_out, ref_grad = value_and_gradient(
            lambda t: theirs(t, t, attention_mask=padding[:, None, :], use_causal_mask=True))
        np.testing.assert_allclose(grad, ref_grad, atol=1e-4)
    else:
        ref_out = _numpy_attention(ours, x.numpy(), x.numpy(), mask)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    # The same layer without blocks (the mask passed explicitly, no causal flag).
    _, unblocked_grad = value_and_gradient(lambda t: ours(t, t, attention_mask=mask))
    np.testing.assert_allclose(grad, unblocked_grad, atol=1e-4)


def test_causal_blocks_equal_cached_decoding(rng):
    # A 130-position sequence attended in blocks equals prompt + token-by-token decoding.
    length = 130
    x = rng.normal(size=(1, length, D)).astype("float32")
    layer = MultiHeadAttention(H, DK, num_key_value_heads=2, rotary_max_wavelength=10000.0,
                               causal_blocks=True)
    full = np.array(layer(x, x, use_causal_mask=True))
    np.testing.assert_allclose(_decode_with_cache(layer, x, 100, length), full, atol=1e-5)


def test_causal_blocks_apply_dropout(rng):
    x = rng.normal(size=(2, 140, D)).astype("float32")
    layer = MultiHeadAttention(H, DK, dropout=0.5, causal_blocks=True)
    eval_out = np.array(layer(x, x, use_causal_mask=True))
    train_out = np.array(layer(x, x, use_causal_mask=True, training=True))
    # Every block drops probabilities, the last block's rows included.
    for start, end in [(0, 64), (64, 128), (128, 140)]:
        assert np.abs(train_out[:, start:end] - eval_out[:, start:end]).max() > 1e-3


def test_causal_blocks_auto_only_under_xla(rng, monkeypatch):
    # "auto" takes the blocked path only in a function compiled by XLA (where it is
    # faster); eagerly and in a graph without XLA (oneDNN's bfloat16 path on CPU) it does
    # not. The three give the same output.
    import tensorflow as tf

    x = tf.constant(rng.normal(size=(2, 130, D)).astype("float32"))
    layer = MultiHeadAttention(H, DK)
    assert layer.causal_blocks == "auto"
    blocked_calls = []
    original = MultiHeadAttention._attend_causal_blocks

    def spy(self, *args, **kwargs):
        blocked_calls.append(True)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MultiHeadAttention, "_attend_causal_blocks", spy)
    outputs = {}
    for name, jit_compile in [("eager", None), ("graph", False), ("xla", True)]:
        blocked_calls.clear()
        if jit_compile is None:
            outputs[name] = layer(x, x, use_causal_mask=True).numpy()
        else:
            fn = tf.function(lambda t: layer(t, t, use_causal_mask=True),
                             jit_compile=jit_compile)
            outputs[name] = fn(x).numpy()
        assert bool(blocked_calls) == (name == "xla"), name
    np.testing.assert_allclose(outputs["xla"], outputs["eager"], atol=1e-5)
    np.testing.assert_allclose(outputs["graph"], outputs["eager"], atol=1e-6)
    # False never blocks, even under XLA.
    blocked_calls.clear()
    never = MultiHeadAttention(H, DK, causal_blocks=False)
    never(x, x)
    never.set_weights(layer.get_weights())
    out = tf.function(lambda t: never(t, t, use_causal_mask=True), jit_compile=True)(x)
    assert not blocked_calls
    np.testing.assert_allclose(out.numpy(), outputs["eager"], atol=1e-5)


def test_config_round_trip(rng):
    layer = MultiHeadAttention(H, DK, num_key_value_heads=2, value_dim=6, output_dim=10,
                               dropout=0.1, use_bias=False, rotary_max_wavelength=500.0,
                               causal_blocks=False, name="attention")
    x = rng.normal(size=(B, T, D)).astype("float32")
    out = np.array(layer(x, x, use_causal_mask=True))
    rebuilt = MultiHeadAttention.from_config(layer.get_config())
    assert rebuilt.get_config() == layer.get_config()
    assert rebuilt.causal_blocks is False and rebuilt.num_key_value_heads == 2
    rebuilt(x, x)
    rebuilt.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.array(rebuilt(x, x, use_causal_mask=True)), out, atol=1e-6)


def test_causal_blocks_rejects_unknown_values():
    with pytest.raises(ValueError, match="causal_blocks"):
        MultiHeadAttention(H, DK, causal_blocks="always")


def test_causal_block_for():
    from keras_lm.layers.multi_head_attention import causal_block_for

    assert [causal_block_for(t) for t in (1, 64, 127, 128, 256, 1000, 1024)] == [
        64, 64, 64, 64, 64, 250, 256]


def test_normalizing_after_values_equals_softmax_first(rng):
    # exp(s - max) V / sum(exp(s - max)) against softmax(s) V, forward and backward; the
    # mask leaves one query row with no visible key (both give the mean of the values).
    import tensorflow as tf

    layer = MultiHeadAttention(H, DK, num_key_value_heads=2)
    layer.build((B, T, D))
    query = tf.constant(rng.normal(size=(B, T, H, DK)).astype("float32"))
    keys = tf.constant(rng.normal(size=(B, S, 2, DK)).astype("float32"))
    values = tf.constant(rng.normal(size=(B, S, 2, DK)).astype("float32"))
    mask = rng.random((B, T, S)) > 0.4
    mask[0, 1] = False
    results = []
    for after in (False, True):
        with tf.GradientTape() as tape:
            tape.watch([query, keys, values])
            out = layer._attend(query, keys, values, tf.constant(mask), False,
                                normalize_after_values=after)
            loss = tf.reduce_sum(out * tf.sin(tf.range(out.shape[-1], dtype="float32")))
        results.append([out] + tape.gradient(loss, [query, keys, values]))
    for plain, after in zip(*results):
        np.testing.assert_allclose(after.numpy(), plain.numpy(), atol=1e-5)
    mean_of_values = np.repeat(values.numpy()[0].mean(0), H // 2, axis=0)  # (H, Dk)
    np.testing.assert_allclose(results[1][0].numpy()[0, 1], mean_of_values, atol=1e-5)
