import numpy as np
import pytest
import tensorflow as tf

from keras_lm.data.masking import mask_tokens
from keras_lm.data.masking import masked_lm_dataset
from keras_lm.tokenizers import CharTokenizer

SPECIALS = [0, 1, 2, 3, 40]  # pad, unk, cls, sep, mask
MASK = 40


def _sample(rng, rows=400, length=64):
    """Rows of [CLS] text [SEP] + padding, text ids in 4..39, random lengths."""
    ids = np.zeros((rows, length), np.int32)
    for row in range(rows):
        n = rng.integers(5, length - 2)
        ids[row, 0] = 2
        ids[row, 1:n + 1] = rng.integers(4, 40, n)
        ids[row, n + 1] = 3
    return ids


def test_masking_statistics_on_a_large_sample(rng):
    ids = _sample(rng)
    masked, labels, weights = (t.numpy() for t in mask_tokens(
        tf.constant(ids), tf.constant([7, 11]), mask_id=MASK, special_ids=SPECIALS,
        vocabulary_size=40))
    chosen = weights > 0
    eligible = ~np.isin(ids, SPECIALS)
    # Exactly max(1, round(15% of the eligible tokens)) a row; specials/padding never chosen.
    np.testing.assert_array_equal(chosen.sum(1), np.maximum(1, np.round(0.15 * eligible.sum(1))))
    assert not np.any(chosen & ~eligible)
    np.testing.assert_array_equal(labels, ids)
    np.testing.assert_array_equal(masked[~chosen], ids[~chosen])  # the rest untouched
    n = chosen.sum()
    assert n > 2000
    to_mask = np.mean(masked[chosen] == MASK)
    unchanged = np.mean(masked[chosen] == ids[chosen])
    replaced = 1 - to_mask - unchanged
    # Binomial standard errors at n ~ 2,700: ~0.008 (80%) and ~0.006 (10%); 4 sigma.
    assert abs(to_mask - 0.8) < 0.035
    # A random replacement equals the original 1/36 of the time: expected 0.1 + 0.1/36 kept.
    assert abs(unchanged - (0.1 + 0.1 / 36)) < 0.025
    assert abs(replaced - (0.1 - 0.1 / 36)) < 0.025
    # Random replacements are ordinary tokens, never a special one.
    assert not np.any(np.isin(masked[chosen & (masked != MASK)], [0, 1, 2, 3]))


def test_masking_positions_are_uniform_and_seeded(rng):
    ids = np.tile(np.r_[2, np.full(20, 9), 3].astype(np.int32), (3000, 1))
    weights = mask_tokens(tf.constant(ids), tf.constant([1, 2]), mask_id=MASK,
                          special_ids=SPECIALS, vocabulary_size=40)[2].numpy()
    per_position = weights[:, 1:21].mean(0)  # 3 of 20 chosen a row: 0.15 each position
    assert np.all(np.abs(per_position - 0.15) < 0.03)
    again = mask_tokens(tf.constant(ids), tf.constant([1, 2]), mask_id=MASK,
                        special_ids=SPECIALS, vocabulary_size=40)[2].numpy()
    other = mask_tokens(tf.constant(ids), tf.constant([1, 3]), mask_id=MASK,
                        special_ids=SPECIALS, vocabulary_size=40)[2].numpy()
    np.testing.assert_array_equal(weights, again)
    assert not np.array_equal(weights, other)


def test_masking_eager_equals_tf_data(rng):
    ids = _sample(rng, rows=8, length=16)
    kwargs = dict(mask_id=MASK, special_ids=SPECIALS, vocabulary_size=40, rate=0.3)
    eager = mask_tokens(tf.constant(ids), tf.constant([5, 6], tf.int64), **kwargs)
    dataset = tf.data.Dataset.from_tensors(ids).map(
        lambda x: mask_tokens(x, tf.constant([5, 6], tf.int64), **kwargs))
    for a, b in zip(eager, next(iter(dataset))):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_masking_argument_errors():
    ids = tf.constant([[2, 5, 3]])
    with pytest.raises(ValueError, match="rate"):
        mask_tokens(ids, tf.constant([0, 0]), mask_id=9, special_ids=[0], vocabulary_size=9,
                    rate=0.0)
    with pytest.raises(ValueError, match="mask_fraction"):
        mask_tokens(ids, tf.constant([0, 0]), mask_id=9, special_ids=[0], vocabulary_size=9,
                    mask_fraction=0.95)


def test_masked_lm_dataset_rows_and_resume():
    text = "the quick brown fox jumps over the lazy dog. " * 3
    tokenizer = CharTokenizer.fit([text])
    mask = tokenizer.vocabulary_size

    def batches(start_step, count):
        ds = masked_lm_dataset([text, text[::-1]], tokenizer, 12, 3, training=True,
                               start_step=start_step, shuffle_buffer=4)
        return [tuple(np.asarray(x["token_ids"] if isinstance(x, dict) else x) for x in b)
                for b in ds.take(count)]

    full = batches(0, 6)
    for ids, labels, weights in full:
        assert ids.shape == (3, 12)
        np.testing.assert_array_equal(labels[:, 0], tokenizer.bos_id)  # [CLS]
        np.testing.assert_array_equal(labels[:, -1], tokenizer.eos_id)  # [SEP]
        assert np.all(weights[:, [0, -1]] == 0)
        assert np.all((ids == labels) | (weights > 0))
        eligible = ~np.isin(labels, [0, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id])
        np.testing.assert_array_equal(weights.sum(1), np.maximum(1, np.round(0.15 * eligible.sum(1))))
    resumed = batches(4, 2)
    for a, b in zip(full[4:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert any((b[0] == mask).any() for b in full)


def test_masked_lm_data_refuses_a_misspelt_field():
    from keras_lm.data.masking import build_masked_lm_datasets

    with pytest.raises(ValueError, match=r"\['mask_rte'\]. Known fields: .*'mask_rate'"):
        build_masked_lm_datasets({"sequence_length": 16, "mask_rte": 0.3},
                                 CharTokenizer.fit(["ab"]), 4)


def test_masking_count_is_pythons_round_of_rate_times_eligible():
    # One row per eligible count n = 1..400: exactly max(1, round(rate * n)) chosen, with
    # Python's round (float64, ties to even) as the reference; float32 arithmetic once gave
    # 29 for n = 190 (0.15 * 190 = 28.5 exactly in float64, 28.500002 in float32).
    length = 402
    counts = np.arange(1, 401)
    ids = np.zeros((len(counts), length), np.int32)
    for row, n in enumerate(counts):
        ids[row, 0], ids[row, 1:n + 1], ids[row, n + 1] = 2, 9, 3
    for rate in (0.15, 0.3):
        weights = mask_tokens(tf.constant(ids), tf.constant([3, 4]), mask_id=MASK,
                              special_ids=SPECIALS, vocabulary_size=40, rate=rate)[2].numpy()
        expected = [max(1, round(rate * int(n))) for n in counts]
        np.testing.assert_array_equal(weights.sum(1), expected)
        assert weights[:, 0].sum() == 0 and (weights * (ids == 0)).sum() == 0
