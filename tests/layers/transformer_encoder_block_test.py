import keras_hub
import numpy as np
import pytest

from keras_lm.layers import TransformerEncoderBlock
from keras_lm.testing import run_layer_test

B, T, D, H, F = 2, 6, 16, 4, 24


def copy_attention(ours, theirs):
    for mine, ref in [(ours.query_dense, theirs._query_dense), (ours.key_dense, theirs._key_dense),
                      (ours.value_dense, theirs._value_dense),
                      (ours.output_dense, theirs._output_dense)]:
        mine.kernel.assign(ref.kernel)
        mine.bias.assign(ref.bias)


def copy_norm(ours, theirs):
    ours.gamma.assign(theirs.gamma)
    ours.beta.assign(theirs.beta)


def copy_feed_forward(ours, theirs):
    for mine, ref in [(ours.intermediate_dense, theirs._feedforward_intermediate_dense),
                      (ours.output_dense, theirs._feedforward_output_dense)]:
        mine.kernel.assign(ref.kernel)
        mine.bias.assign(ref.bias)


@pytest.mark.parametrize("norm_first", [True, False])
def test_matches_keras_hub_encoder(rng, norm_first):
    x = rng.normal(size=(B, T, D)).astype("float32")
    padding = np.ones((B, T), bool)
    padding[1, -3:] = False
    theirs = keras_hub.layers.TransformerEncoder(F, H, activation="relu",
                                                 normalize_first=norm_first)
    expected = np.array(theirs(x, padding_mask=padding))
    ours = TransformerEncoderBlock(H, F, activation="relu", norm_first=norm_first)
    ours(x)
    copy_attention(ours.self_attention, theirs._self_attention_layer)
    copy_norm(ours.attention_norm, theirs._self_attention_layer_norm)
    copy_norm(ours.feed_forward_norm, theirs._feedforward_layer_norm)
    copy_feed_forward(ours.feed_forward, theirs)
    np.testing.assert_allclose(ours(x, padding_mask=padding), expected, atol=1e-5)


def test_padding_does_not_leak(rng):
    block = TransformerEncoderBlock(H, F)
    x = rng.normal(size=(1, T, D)).astype("float32")
    padding = np.array([[1, 1, 1, 1, 0, 0]], bool)
    changed = x.copy()
    changed[:, 4:] = rng.normal(size=(1, 2, D))
    np.testing.assert_allclose(block(x, padding_mask=padding)[:, :4],
                               block(changed, padding_mask=padding)[:, :4], atol=1e-6)


def test_layer_contract(rng):
    run_layer_test(
        TransformerEncoderBlock,
        dict(num_heads=H, intermediate_dim=F, num_key_value_heads=2, norm="rms_norm",
             activation="swiglu", dropout=0.1),
        [rng.normal(size=(B, T, D)).astype("float32"), np.ones((B, T), bool)],
        expected_output_shape=(B, T, D),
        mixed_precision_atol=0.1,
    )


def test_bad_arguments(rng):
    with pytest.raises(ValueError, match="num_heads"):
        TransformerEncoderBlock(num_heads=3, intermediate_dim=8)(np.zeros((1, 2, 16), "float32"))
    with pytest.raises(ValueError, match="norm"):
        TransformerEncoderBlock(num_heads=2, intermediate_dim=8, norm="batch")
    with pytest.raises(ValueError, match="num_key_value_heads"):
        TransformerEncoderBlock(4, 8, num_key_value_heads=3)(np.zeros((1, 2, 16), "float32"))
