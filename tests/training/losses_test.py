import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.training import MaskedSparseCrossEntropy
from keras_lm.training import cross_entropy_sums
from keras_lm.training import masked_sparse_cross_entropy

from .tiny_lm import numpy_cross_entropy


def padded_batch(rng, batch=3, length=5, vocab=7):
    logits = rng.normal(scale=3.0, size=(batch, length, vocab)).astype("float32")
    labels = rng.integers(0, vocab, (batch, length)).astype("int32")
    weights = np.ones((batch, length), "float32")
    weights[0, 3:] = 0  # padding
    weights[2, 1:] = 0
    weights[1, 2] = 0.5  # fractional weights count fractionally
    labels[weights == 0] = -1  # padding labels outside the vocabulary must be ignored
    return labels, logits, weights


def test_loss_is_weighted_mean_over_real_tokens(rng):
    labels, logits, weights = padded_batch(rng)
    token_losses = numpy_cross_entropy(labels, logits)
    expected = np.sum(weights * token_losses) / np.sum(weights)
    assert float(masked_sparse_cross_entropy(labels, logits, weights)) == pytest.approx(
        expected, rel=1e-5
    )
    assert float(MaskedSparseCrossEntropy()(labels, logits, weights)) == pytest.approx(
        expected, rel=1e-5
    )
    # Not Keras's default: dividing by all B * T positions would give a smaller number.
    assert expected != pytest.approx(np.sum(weights * token_losses) / weights.size, rel=1e-3)
    total, count = cross_entropy_sums(labels, logits, weights)
    assert float(total) == pytest.approx(np.sum(weights * token_losses), rel=1e-5)
    assert float(count) == pytest.approx(np.sum(weights))


def test_loss_without_weights_and_with_per_sequence_or_trailing_axis_weights(rng):
    labels, logits, _ = padded_batch(rng)
    labels = np.abs(labels)
    token_losses = numpy_cross_entropy(labels, logits)
    assert float(masked_sparse_cross_entropy(labels, logits)) == pytest.approx(
        token_losses.mean(), rel=1e-5
    )
    per_sequence = np.array([1.0, 0.0, 2.0], "float32")
    expected = np.sum(per_sequence[:, None] * token_losses) / (per_sequence.sum() * labels.shape[1])
    assert float(masked_sparse_cross_entropy(labels, logits, per_sequence)) == pytest.approx(
        expected, rel=1e-5
    )
    weights = (rng.random(labels.shape) > 0.3).astype("float32")
    np.testing.assert_allclose(
        masked_sparse_cross_entropy(labels[..., None], logits, weights[..., None]),
        masked_sparse_cross_entropy(labels, logits, weights),
        rtol=1e-6,
    )


def test_all_padding_gives_zero_not_nan(rng):
    labels, logits, weights = padded_batch(rng)
    assert float(masked_sparse_cross_entropy(labels, logits, np.zeros_like(weights))) == 0.0


def test_bfloat16_logits_are_reduced_in_float32(rng):
    labels, logits, weights = padded_batch(rng, vocab=50)
    logits = logits * 4
    bf16_logits = tf.cast(logits, tf.bfloat16)
    value = MaskedSparseCrossEntropy()(labels, bf16_logits, weights)
    assert value.dtype == tf.float32
    # Reference: the same bf16-rounded logits, in float64.
    rounded = tf.cast(bf16_logits, tf.float32).numpy()
    expected = np.sum(weights * numpy_cross_entropy(labels, rounded)) / np.sum(weights)
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_loss_in_compile_and_with_a_keras_mask(rng):
    vocab, length = 6, 5
    model = keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocab, 4, mask_zero=True),  # id 0 is padding
            keras.layers.Dense(vocab),
        ]
    )
    model.compile(loss=MaskedSparseCrossEntropy(), jit_compile=False)
    ids = rng.integers(0, vocab, (4, length)).astype("int32")
    ids[:, 0] = 1
    labels = rng.integers(0, vocab, (4, length)).astype("int32")
    token_losses = numpy_cross_entropy(labels, model(ids).numpy())
    real = ids != 0
    assert not real.all()
    loss = model.evaluate(ids, labels, batch_size=4, verbose=0)
    assert loss == pytest.approx(token_losses[real].mean(), rel=1e-5)
    weights = rng.uniform(0.5, 2.0, ids.shape).astype("float32")
    loss = model.evaluate(ids, labels, sample_weight=weights, batch_size=4, verbose=0)
    assert loss == pytest.approx(
        np.sum((weights * token_losses)[real]) / np.sum(weights[real]), rel=1e-5
    )
    # Per-sequence weights (B,) with the mask: one weight per row, also where B == T.
    square = np.concatenate([ids, ids[:1]])  # B = T = 5
    square_labels = np.concatenate([labels, labels[:1]])
    row_weights = np.array([1.0, 0.5, 2.0, 1.5, 0.25], "float32")
    token_losses = numpy_cross_entropy(square_labels, model(square).numpy())
    real = square != 0
    per_token = np.broadcast_to(row_weights[:, None], square.shape)
    loss = MaskedSparseCrossEntropy()(square_labels, model(square), sample_weight=row_weights)
    assert float(loss) == pytest.approx(
        np.sum((per_token * token_losses)[real]) / np.sum(per_token[real]), rel=1e-5
    )


def test_loss_config_round_trip():
    loss = MaskedSparseCrossEntropy(name="lm_loss")
    revived = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(revived, MaskedSparseCrossEntropy)
    assert revived.name == "lm_loss"
