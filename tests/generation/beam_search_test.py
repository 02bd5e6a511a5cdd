import heapq

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.generation.beam_search import beam_search
from keras_lm.generation.beam_search import length_penalty_factor
from keras_lm.models.seq2seq_decoding import decode_ids
from keras_lm.models.seq2seq_transformer import Seq2SeqTransformer


class TableModel:
    """A stand-in decoder with a non-trivial cache, small enough for exhaustive search.

    Next-token logits = table[t, previous token, parity of the sum of all tokens so far]
    + bias[source], so the cache (the running parity) must follow its beam when beams are
    reordered: a wrong reorder would disagree with `decode`, which recomputes the parity.
    """

    def __init__(self, table, bias):
        self.table = np.asarray(table, "float32")  # [N, V, 2, V]
        self.bias = np.asarray(bias, "float32")  # [num_sources, V]

    def decoding_state(self, ids):
        return (tf.gather(self.bias, ids[:, 0]),)

    def init_cache(self, batch_size, length):
        return (tf.zeros([batch_size], tf.int32),)

    def call_with_cache(self, ids, cache, index, bias):
        token = ids[:, 0]
        parity = (cache[0] + token) % 2
        index = tf.fill(tf.shape(token), index)
        logits = tf.gather_nd(self.table, tf.stack([index, token, parity], -1)) + bias
        return logits[:, None], (parity,)

    def decode(self, ids, bias):
        steps = tf.shape(ids)[1]
        parity = tf.cumsum(ids, axis=1) % 2
        positions = tf.broadcast_to(tf.range(steps)[None], tf.shape(ids))
        logits = tf.gather_nd(self.table, tf.stack([positions, ids, parity], -1))
        return logits + bias[:, None]

    def log_prob(self, source, sequence, bos):
        """log P(sequence | source) in numpy, from the definition."""
        prefix = [bos] + list(sequence)
        total = 0.0
        for t, token in enumerate(sequence):
            logits = self.table[t, prefix[t], sum(prefix[: t + 1]) % 2] + self.bias[source]
            logits = logits.astype("float64")
            log_probs = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
            total += log_probs[token]
        return total


def exact_top_k(model, source, k, max_length, alpha, bos, eos):
    """Branch and bound over every output: the k best by log P / lp(n), best first."""
    vocabulary = model.table.shape[-1]
    best = []  # min-heap of (score, sequence)

    def kth():
        return best[0][0] if len(best) == k else -np.inf

    def visit(prefix, log_p):
        if prefix and prefix[-1] == eos or len(prefix) == max_length:
            score = log_p / length_penalty_factor(len(prefix), alpha)
            if score > kth():
                heapq.heappush(best, (score, tuple(prefix)))
                if len(best) > k:
                    heapq.heappop(best)
            return
        if log_p / length_penalty_factor(max_length, alpha) <= kth():
            return  # no extension can beat the k-th best (the documented bound)
        for token in range(vocabulary):
            sequence = prefix + [token]
            visit(sequence, model.log_prob(source, sequence, bos))

    visit([], 0.0)
    return sorted(best, reverse=True)


def hypotheses(out, row):
    return [(float(score), tuple(out.sequences[row, i, : out.lengths[row, i]].tolist()))
            for i, score in enumerate(out.scores[row]) if np.isfinite(score)]


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_exhaustive_beam_equals_exact_search_in_score_order(alpha, rng):
    # V = 4, N = 3: 13 finished outputs and 27 cut at max_length; K = 40 keeps them all.
    model = TableModel(rng.normal(0, 2, (3, 4, 2, 4)), rng.normal(0, 1, (2, 4)))
    sources = np.array([[0], [1]], "int32")
    out = beam_search(model, sources, max_length=3, beam_size=40, length_penalty=alpha,
                      bos_id=2, eos_id=3, jit_compile=False)
    uncached = beam_search(model, sources, max_length=3, beam_size=40, length_penalty=alpha,
                           bos_id=2, eos_id=3, use_cache=False, jit_compile=False)
    np.testing.assert_array_equal(out.sequences, uncached.sequences)
    for row in range(2):
        found = hypotheses(out, row)
        expected = exact_top_k(model, row, 40, 3, alpha, bos=2, eos=3)
        assert len(found) == len(expected) == 40
        assert [s for _, s in found] == [s for _, s in expected]
        np.testing.assert_allclose([x for x, _ in found], [x for x, _ in expected], rtol=1e-5)
        assert all(a >= b for (a, _), (b, _) in zip(found, found[1:]))  # best first
        for i, (_, sequence) in enumerate(found):
            assert out.finished[row, i] == (sequence[-1] == 3)
    assert out.steps == 3


def test_early_stop_at_end_of_sequence(rng):
    bias = rng.normal(0, 1, (2, 4))
    bias[:, 3] += 6.0  # end-of-sequence is by far the likeliest token
    model = TableModel(rng.normal(0, 1, (8, 4, 2, 4)), bias)
    sources = np.array([[0], [1]], "int32")
    out = beam_search(model, sources, max_length=8, beam_size=2, bos_id=2, eos_id=3,
                      jit_compile=False)
    assert out.steps < 8  # every input had 2 finished hypotheses no alive one could beat
    assert out.finished.all()
    for row in range(2):
        expected = exact_top_k(model, row, 2, 8, 0.0, bos=2, eos=3)
        assert [s for _, s in hypotheses(out, row)] == [s for _, s in expected]


@pytest.fixture(scope="module")
def transformer():
    keras.utils.set_random_seed(3)
    model = Seq2SeqTransformer(vocabulary_size=12, num_layers=1, num_heads=2, hidden_dim=16,
                               sequence_length=6, target_sequence_length=8, intermediate_dim=32)
    model.build()
    rng = np.random.default_rng(3)
    for variable in model.weights:  # spread logits: no near-ties between hypotheses
        if "embeddings" in variable.path:
            variable.assign(rng.normal(0.0, 1.0, variable.shape).astype("float32"))
    return model


SOURCES = np.array([[5, 6, 7, 8, 3, 0], [4, 3, 0, 0, 0, 0], [9, 8, 3, 0, 0, 0]], "int32")


def test_transformer_cached_equals_uncached_and_scores_follow_the_formula(transformer):
    alpha = 0.6
    cached = beam_search(transformer, SOURCES, 8, beam_size=3, length_penalty=alpha, bos_id=2,
                         eos_id=3)
    # The reference path recomputes every prefix, as a plain TF graph (quicker to build than
    # a second XLA program).
    uncached = beam_search(transformer, SOURCES, 8, beam_size=3, length_penalty=alpha,
                           bos_id=2, eos_id=3, use_cache=False, jit_compile=False)
    np.testing.assert_array_equal(cached.sequences, uncached.sequences)
    np.testing.assert_array_equal(cached.lengths, uncached.lengths)
    np.testing.assert_allclose(cached.scores, uncached.scores, rtol=1e-5)
    assert (np.diff(cached.scores, axis=1) <= 0).all()  # best first
    for row in range(len(SOURCES)):
        for k in range(3):
            sequence = cached.sequences[row, k, : cached.lengths[row, k]].tolist()
            decoder = np.array([[2] + sequence[:-1]], "int32")
            logits = np.asarray(transformer({"encoder_token_ids": SOURCES[row:row + 1],
                                             "decoder_token_ids": decoder}), "float64")[0]
            log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            log_p = sum(log_probs[t, token] for t, token in enumerate(sequence))
            lp = ((5 + len(sequence)) / 6) ** alpha
            assert cached.scores[row, k] == pytest.approx(log_p / lp, rel=1e-4)
            assert cached.finished[row, k] == (sequence[-1] == 3)
    # Each input is searched as if alone: a batch of copies of one source gives its rows.
    for row in range(len(SOURCES)):
        alone = beam_search(transformer, np.repeat(SOURCES[row:row + 1], 3, 0), 8, beam_size=3,
                            length_penalty=alpha, bos_id=2, eos_id=3)
        np.testing.assert_array_equal(alone.sequences[0], cached.sequences[row])


def test_beam_size_one_is_greedy(transformer):
    beam = beam_search(transformer, SOURCES, 8, beam_size=1, bos_id=2, eos_id=3,
                       jit_compile=False)
    greedy, lengths = decode_ids(transformer, SOURCES, 8, 2, [3], jit_compile=False)
    np.testing.assert_array_equal(beam.sequences[:, 0], greedy)
    np.testing.assert_array_equal(beam.lengths[:, 0], lengths)


def test_bad_arguments(transformer):
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(transformer, SOURCES, 8, beam_size=0, bos_id=2, eos_id=3)
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(transformer, SOURCES, 8, length_penalty=-1.0, bos_id=2, eos_id=3)
    with pytest.raises(ValueError, match="eos_id"):
        beam_search(transformer, SOURCES, 8, bos_id=2)
    with pytest.raises(ValueError, match="encoder_token_ids"):
        beam_search(transformer, SOURCES[0], 8, bos_id=2, eos_id=3)
    with pytest.raises(ValueError, match="max_length"):
        beam_search(transformer, SOURCES, 0, bos_id=2, eos_id=3)
    with pytest.raises(ValueError, match="target_sequence_length \\(8\\)"):
        beam_search(transformer, SOURCES, 9, bos_id=2, eos_id=3)
