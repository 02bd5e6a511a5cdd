import numpy as np
import tensorflow as tf

from keras_lm.generation import filter_logits
from keras_lm.generation import sample


def _logits(rng, batch=3, vocab=20):
    return tf.constant(rng.normal(size=(batch, vocab)) * 2, tf.float32)


def test_greedy_is_argmax(rng):
    logits = _logits(rng)
    np.testing.assert_array_equal(sample(logits, temperature=0.0, seed=[1, 2]),
                                  np.argmax(logits, -1))


def test_top_k_never_leaves_the_k_best(rng):
    logits = _logits(rng)
    best = np.argsort(-np.array(logits), axis=-1)[:, :3]
    for s in range(200):
        token = np.array(sample(logits, temperature=5.0, top_k=3, seed=[s, 0]))
        for row in range(3):
            assert token[row] in best[row]


def test_top_p_keeps_the_smallest_nucleus(rng):
    logits = _logits(rng, batch=2)
    filtered = np.array(filter_logits(logits, top_p=0.7))
    probs = tf.nn.softmax(logits).numpy()
    for row in range(2):
        order = np.argsort(-probs[row])
        mass = np.cumsum(probs[row][order])
        n_keep = int(np.searchsorted(mass, 0.7) + 1)  # first prefix reaching 0.7
        kept = set(np.flatnonzero(np.isfinite(filtered[row])))
        assert kept == set(order[:n_keep])


def test_same_seed_same_sample_and_distribution(rng):
    logits = _logits(rng, batch=1, vocab=5)
    a = [int(sample(logits, 1.0, seed=[7, t])[0]) for t in range(50)]
    b = [int(sample(logits, 1.0, seed=[7, t])[0]) for t in range(50)]
    assert a == b
    draws = np.array([int(sample(logits, 1.0, seed=[s, 1])[0]) for s in range(2000)])
    freq = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(freq, tf.nn.softmax(logits)[0], atol=0.04)


def test_top_p_of_zero_or_less_keeps_only_the_most_likely_token(rng):
    logits = _logits(rng)
    for top_p in (0.0, -1.0):
        filtered = np.array(filter_logits(logits, top_p=top_p))
        kept = np.isfinite(filtered)
        np.testing.assert_array_equal(kept.sum(-1), [1, 1, 1])
        np.testing.assert_array_equal(np.argmax(kept, -1), np.argmax(logits, -1))
        for s in range(20):  # so sampling with it is greedy
            np.testing.assert_array_equal(sample(logits, 2.0, top_p=top_p, seed=[s, 0]),
                                          np.argmax(logits, -1))


def test_a_row_samples_the_same_token_alone_or_in_any_batch(rng):
    logits = _logits(rng, batch=4)
    for settings in ({}, {"top_k": 5}, {"top_p": 0.8}):
        for s in range(30):
            batch = np.array(sample(logits, 1.3, seed=[s, 2], **settings))
            alone = [int(sample(logits[b:b + 1], 1.3, seed=[s, 2], **settings)[0])
                     for b in range(4)]
            assert batch.tolist() == alone
            shuffled = np.array(sample(tf.reverse(logits, [0]), 1.3, seed=[s, 2], **settings))
            assert shuffled.tolist() == alone[::-1]
