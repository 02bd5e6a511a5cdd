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
    cache = np.zeros((B, 2, layer.num_key_value_heads, T + 3, DK), "float32")  # room to spare
    # The first two tokens at once, then one token at a time.
    out, cache = layer(x[:, :2], x[:, :2], use_causal_mask=True, cache=cache, cache_update_index=0)
    steps = [np.array(out)]
    for t in range(2, T):
        out, cache = layer(x[:, t:t + 1], x[:, t:t + 1], use_causal_mask=True, cache=cache,
                           cache_update_index=t)
        steps.append(np.array(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


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
