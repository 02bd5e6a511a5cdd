import keras
import keras_hub
import numpy as np
import pytest

from keras_lm.layers import TokenAndPositionEmbedding
from keras_lm.layers import TransformerDecoderBlock
from keras_lm.testing import run_layer_test

B, T, S, D, H, F, V = 2, 6, 4, 16, 4, 24, 30


def _copy_attention(ours, theirs):
    for mine, ref in [(ours.query_dense, theirs._query_dense), (ours.key_dense, theirs._key_dense),
                      (ours.value_dense, theirs._value_dense),
                      (ours.output_dense, theirs._output_dense)]:
        mine.kernel.assign(ref.kernel)
        mine.bias.assign(ref.bias)


def _copy_norm(ours, theirs):
    ours.gamma.assign(theirs.gamma)
    ours.beta.assign(theirs.beta)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("cross", [False, True])
def test_matches_keras_hub_decoder(rng, norm_first, cross):
    x = rng.normal(size=(B, T, D)).astype("float32")
    encoder = rng.normal(size=(B, S, D)).astype("float32") if cross else None
    padding = np.ones((B, T), bool)
    padding[0, -2:] = False
    theirs = keras_hub.layers.TransformerDecoder(F, H, activation="relu",
                                                 normalize_first=norm_first)
    expected = np.array(theirs(x, encoder, decoder_padding_mask=padding))
    ours = TransformerDecoderBlock(H, F, activation="relu", norm_first=norm_first,
                                   use_cross_attention=cross)
    ours(x, encoder)
    _copy_attention(ours.self_attention, theirs._self_attention_layer)
    _copy_norm(ours.self_attention_norm, theirs._self_attention_layer_norm)
    if cross:
        _copy_attention(ours.cross_attention, theirs._cross_attention_layer)
        _copy_norm(ours.cross_attention_norm, theirs._cross_attention_layer_norm)
    _copy_norm(ours.feed_forward_norm, theirs._feedforward_layer_norm)
    for mine, ref in [(ours.feed_forward.intermediate_dense, theirs._feedforward_intermediate_dense),
                      (ours.feed_forward.output_dense, theirs._feedforward_output_dense)]:
        mine.kernel.assign(ref.kernel)
        mine.bias.assign(ref.bias)
    actual = np.array(ours(x, encoder, decoder_padding_mask=padding))
    np.testing.assert_allclose(actual, expected, atol=1e-5)


@pytest.mark.parametrize("num_blocks", [1, 2])
def test_causality(rng, num_blocks):
    blocks = [TransformerDecoderBlock(H, F, num_key_value_heads=2, rotary_max_wavelength=1e4)
              for _ in range(num_blocks)]

    def run(x):
        for block in blocks:
            x = block(x)
        return np.array(x)

    x = rng.normal(size=(B, T, D)).astype("float32")
    reference = run(x)
    for t in range(T - 1):
        changed = x.copy()
        changed[:, t + 1:] = rng.normal(size=changed[:, t + 1:].shape)
        out = run(changed)
        np.testing.assert_allclose(out[:, : t + 1], reference[:, : t + 1], atol=1e-5)
        assert not np.allclose(out[:, t + 1:], reference[:, t + 1:])


class _TinyDecoder:
    """Embedding + two decoder blocks, run either whole or one token at a time with caches."""

    def __init__(self, position_encoding, cross):
        rotary = 10000.0 if position_encoding == "rotary" else None
        self.embedding = TokenAndPositionEmbedding(
            V, 16, D, position_encoding="none" if rotary else position_encoding)
        self.blocks = [TransformerDecoderBlock(H, F, num_key_value_heads=2, norm="rms_norm",
                                               use_cross_attention=cross,
                                               rotary_max_wavelength=rotary)
                       for _ in range(2)]

    def full(self, ids, encoder):
        x = self.embedding(ids)
        for block in self.blocks:
            x = block(x, encoder)
        return np.array(x)

    def incremental(self, ids, encoder, cache_length):
        caches = [np.zeros((ids.shape[0], 2, 2, cache_length, D // H), "float32")
                  for _ in self.blocks]
        outputs = []
        for t in range(ids.shape[1]):
            x = self.embedding(ids[:, t:t + 1], start_index=t)
            for i, block in enumerate(self.blocks):
                x, caches[i] = block(x, encoder, self_attention_cache=caches[i],
                                     self_attention_cache_update_index=t)
            outputs.append(np.array(x))
        return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("position_encoding", ["learned", "sinusoidal", "rotary"])
def test_cached_decoding_equals_full_pass(rng, position_encoding, cross):
    model = _TinyDecoder(position_encoding, cross)
    ids = rng.integers(1, V, size=(B, T))
    encoder = rng.normal(size=(B, S, D)).astype("float32") if cross else None
    full = model.full(ids, encoder)
    np.testing.assert_allclose(model.incremental(ids, encoder, cache_length=T + 2), full,
                               atol=1e-5)


def test_cache_with_jit_compiled_step(rng):
    """A cache update index that is a tensor (as inside a compiled loop) works."""
    import tensorflow as tf

    block = TransformerDecoderBlock(H, F)
    x = rng.normal(size=(1, T, D)).astype("float32")
    full = np.array(block(x))

    @tf.function(jit_compile=True)
    def step(token, cache, index):
        return block(token, self_attention_cache=cache, self_attention_cache_update_index=index)

    cache = tf.zeros((1, 2, H, T, D // H))
    outs = []
    for t in range(T):
        out, cache = step(x[:, t:t + 1], cache, tf.constant(t))
        outs.append(np.array(out))
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, atol=1e-5)


def test_layer_contract(rng):
    run_layer_test(
        TransformerDecoderBlock,
        dict(num_heads=H, intermediate_dim=F, use_cross_attention=True, dropout=0.1,
             norm_first=False),
        [rng.normal(size=(B, T, D)).astype("float32"), rng.normal(size=(B, S, D)).astype("float32")],
        expected_output_shape=(B, T, D),
        mixed_precision_atol=0.1,
    )


def test_bad_arguments(rng):
    x = rng.normal(size=(1, 3, D)).astype("float32")
    with pytest.raises(ValueError, match="encoder_sequence"):
        TransformerDecoderBlock(H, F, use_cross_attention=True)(x)
    with pytest.raises(ValueError, match="use_cross_attention"):
        TransformerDecoderBlock(H, F)(x, x)
    block = TransformerDecoderBlock(H, F)
    with pytest.raises(ValueError, match="cache_update_index"):
        block(x, self_attention_cache=np.zeros((1, 2, H, 4, D // H), "float32"))


def test_symbolic_call_with_cache_returns_output_and_cache(rng):
    # The output spec of a call with a cache is (output, new_cache), as in eager calls.
    block = TransformerDecoderBlock(H, F)
    x = rng.normal(size=(B, 1, D)).astype("float32")
    cache = rng.normal(size=(B, 2, H, T, D // H)).astype("float32")
    eager_out, eager_cache = block(x, self_attention_cache=cache,
                                   self_attention_cache_update_index=2)
    x_in = keras.Input((1, D), batch_size=B)
    cache_in = keras.Input((2, H, T, D // H), batch_size=B)
    outputs = block(x_in, self_attention_cache=cache_in, self_attention_cache_update_index=2)
    assert isinstance(outputs, tuple) and len(outputs) == 2
    assert tuple(outputs[0].shape) == (B, 1, D)
    assert tuple(outputs[1].shape) == (B, 2, H, T, D // H)
    out, new_cache = keras.Model([x_in, cache_in], outputs).predict_on_batch([x, cache])
    np.testing.assert_allclose(out, eager_out, atol=1e-6)
    np.testing.assert_allclose(new_cache, eager_cache, atol=1e-6)
