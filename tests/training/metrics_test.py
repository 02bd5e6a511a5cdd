import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.training import Perplexity
from keras_lm.training import token_accuracy

from .tiny_lm import numpy_cross_entropy


def batches(rng, count=3, batch=2, length=6, vocab=9):
    for _ in range(count):
        logits = rng.normal(scale=2.0, size=(batch, length, vocab)).astype("float32")
        labels = rng.integers(0, vocab, (batch, length)).astype("int32")
        lengths = rng.integers(1, length + 1, batch)
        weights = (np.arange(length)[None] < lengths[:, None]).astype("float32")
        yield labels, logits, weights


def test_perplexity_is_exp_of_the_corpus_token_mean(rng):
    data = list(batches(rng))
    metric = Perplexity()
    for labels, logits, weights in data:
        metric.update_state(labels, logits, sample_weight=weights)
    total = sum(np.sum(w * numpy_cross_entropy(y, z)) for y, z, w in data)
    count = sum(np.sum(w) for _, _, w in data)
    assert float(metric.result()) == pytest.approx(np.exp(total / count), rel=1e-5)
    # Not the mean of per-batch perplexities.
    per_batch = [np.exp(np.sum(w * numpy_cross_entropy(y, z)) / np.sum(w)) for y, z, w in data]
    assert float(metric.result()) != pytest.approx(np.mean(per_batch), rel=1e-4)

    metric.reset_state()
    assert np.isnan(float(metric.result()))  # nothing seen: no score
    labels, logits, weights = data[0]
    metric.update_state(labels, tf.cast(logits, tf.bfloat16), sample_weight=weights)
    rounded = tf.cast(tf.cast(logits, tf.bfloat16), tf.float32).numpy()
    expected = np.exp(np.sum(weights * numpy_cross_entropy(labels, rounded)) / weights.sum())
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)


def test_weighted_metrics_in_evaluate_skip_padding(rng):
    length, vocab = 6, 9
    model = keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocab, 8),
            keras.layers.Dense(vocab),
        ]
    )
    model.compile(
        loss="sparse_categorical_crossentropy",
        weighted_metrics=[token_accuracy(), Perplexity()],
        jit_compile=False,
    )
    ids = rng.integers(0, vocab, (8, length)).astype("int32")
    labels = rng.integers(0, vocab, (8, length)).astype("int32")
    weights = (rng.random((8, length)) > 0.4).astype("float32")
    logits = model(ids).numpy()
    results = model.evaluate(
        ids, labels, sample_weight=weights, batch_size=3, verbose=0, return_dict=True
    )
    correct = (logits.argmax(-1) == labels).astype("float32")
    assert results["token_accuracy"] == pytest.approx(
        np.sum(weights * correct) / weights.sum(), rel=1e-5
    )
    mean_ce = np.sum(weights * numpy_cross_entropy(labels, logits)) / weights.sum()
    assert results["perplexity"] == pytest.approx(np.exp(mean_ce), rel=1e-5)


def test_perplexity_config_round_trip():
    metric = Perplexity(name="val_ppl")
    revived = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(revived, Perplexity) and revived.name == "val_ppl"


def test_perplexity_leaves_out_keras_masked_positions(rng):
    # Before the fix, Perplexity ignored the mask of Embedding(mask_zero=True) and counted the
    # padding positions, while token_accuracy (a MeanMetricWrapper) left them out.
    length, vocab = 6, 9
    model = keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocab, 8, mask_zero=True),
            keras.layers.Dense(vocab),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy",
                  weighted_metrics=[token_accuracy(), Perplexity()], jit_compile=False)
    ids = rng.integers(1, vocab, (8, length)).astype("int32")
    ids[:, 4:] = 0
    ids[0, 1:] = 0
    labels = rng.integers(0, vocab, (8, length)).astype("int32")
    logits = model(ids)
    ce = numpy_cross_entropy(labels, logits.numpy())
    mask = (ids != 0).astype("float32")

    results = model.evaluate(ids, labels, batch_size=3, verbose=0, return_dict=True)
    assert results["perplexity"] == pytest.approx(np.exp(np.sum(mask * ce) / mask.sum()),
                                                  rel=1e-5)
    correct = (logits.numpy().argmax(-1) == labels).astype("float32")
    assert results["token_accuracy"] == pytest.approx(np.sum(mask * correct) / mask.sum(),
                                                      rel=1e-5)
    # A second evaluate starts from a reset state: it scores only its own data.
    results = model.evaluate(ids[4:], labels[4:], batch_size=3, verbose=0, return_dict=True)
    assert results["perplexity"] == pytest.approx(
        np.exp(np.sum(mask[4:] * ce[4:]) / mask[4:].sum()), rel=1e-5)

    # Per-sequence weights (B,) combine with the (B, T) mask.
    per_sequence = np.array([0, 1, 2, 1, 1, 0, 3, 1], "float32")
    metric = Perplexity()
    metric.update_state(labels, logits, sample_weight=per_sequence)
    weights = mask * per_sequence[:, None]
    assert float(metric.result()) == pytest.approx(
        np.exp(np.sum(weights * ce) / weights.sum()), rel=1e-5)


def test_perplexity_of_no_tokens_is_nan_not_a_perfect_score():
    metric = Perplexity()
    assert np.isnan(float(metric.result()))
    labels, logits = np.array([[1, 2]]), np.zeros((1, 2, 4), "float32")
    metric.update_state(labels, logits, sample_weight=np.zeros((1, 2), "float32"))
    assert np.isnan(float(metric.result()))  # only padding so far
    metric.update_state(labels, logits)
    assert float(metric.result()) == pytest.approx(4.0)  # uniform over 4 tokens
    metric.reset_state()
    assert np.isnan(float(metric.result()))
