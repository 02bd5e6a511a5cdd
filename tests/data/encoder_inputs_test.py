import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_lm.data.encoder_inputs import array_dataset
from keras_lm.data.encoder_inputs import classification_dataset
from keras_lm.data.encoder_inputs import encoder_vocabulary_size
from keras_lm.data.encoder_inputs import example_order
from keras_lm.data.encoder_inputs import pack_segments
from keras_lm.data.encoder_inputs import special_token_ids
from keras_lm.data.encoder_inputs import tagging_arrays
from keras_lm.data.encoder_inputs import truncate_pair_lengths
from keras_lm.tokenizers import ByteTokenizer
from keras_lm.tokenizers import CharTokenizer


def test_special_ids_reuse_the_tokenizer_and_append_mask():
    tokenizer = CharTokenizer.fit(["abc"])
    ids = special_token_ids(tokenizer)
    assert (ids["pad"], ids["cls"], ids["sep"]) == (0, tokenizer.bos_id, tokenizer.eos_id)
    assert ids["mask"] == tokenizer.vocabulary_size == encoder_vocabulary_size(tokenizer) - 1
    assert ids["all"] == sorted(tokenizer.special_ids + [ids["mask"]])


def _longest_first(a, b, budget):
    """The reference algorithm: drop one token at a time from the longer (second on ties)."""
    while a + b > budget:
        if a > b:
            a -= 1
        else:
            b -= 1
    return a, b


def test_truncate_pair_lengths_matches_the_iterative_rule():
    cases = list(itertools.product(range(0, 9), range(0, 9), range(0, 10)))
    a, b, budget = (tf.constant([c[i] for c in cases]) for i in range(3))
    kept_a, kept_b = truncate_pair_lengths(a, b, budget)
    expected = np.array([_longest_first(*c) for c in cases])
    np.testing.assert_array_equal(np.stack([kept_a, kept_b], 1), expected)


def test_pack_segments_pairs_get_segment_ids():
    first = tf.ragged.constant([[10, 11, 12], [20]])
    second = tf.ragged.constant([[30, 31], [40, 41, 42, 43, 44]])
    packed = pack_segments(first, second, 8, cls_id=2, sep_id=3)
    np.testing.assert_array_equal(packed["token_ids"], [
        [2, 10, 11, 12, 3, 30, 31, 3],
        [2, 20, 3, 40, 41, 42, 43, 3],  # b cut to 4 of 5 (budget 5, a keeps its 1)
    ])
    np.testing.assert_array_equal(packed["segment_ids"], [
        [0, 0, 0, 0, 0, 1, 1, 1],
        [0, 0, 0, 1, 1, 1, 1, 1],
    ])
    single = pack_segments(first, None, 4, cls_id=2, sep_id=3)
    np.testing.assert_array_equal(single["token_ids"], [[2, 10, 11, 3], [2, 20, 3, 0]])
    np.testing.assert_array_equal(single["segment_ids"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="sequence_length=2"):
        pack_segments(first, second, 2, cls_id=2, sep_id=3)


def test_classification_dataset_pairs_eager_equals_tf_data():
    tokenizer = ByteTokenizer()
    examples = [{"text": "ab", "text_pair": "xyz"}, {"text": "c", "text_pair": "d"}]
    ds = classification_dataset(examples, tokenizer, [1, 0], 8, 2, training=False)
    features, labels = next(iter(ds))
    expected = pack_segments(tokenizer.tokenize(["ab", "c"]), tokenizer.tokenize(["xyz", "d"]),
                             8, tokenizer.bos_id, tokenizer.eos_id)
    for key in ("token_ids", "segment_ids"):
        np.testing.assert_array_equal(features[key], expected[key])
    np.testing.assert_array_equal(labels, [1, 0])
    assert features["segment_ids"].numpy()[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_example_order_epochs_are_permutations_and_resume():
    order = [int(i) for i in example_order(5, 2, training=True, seed=3).take(15)]
    for epoch in range(3):
        assert sorted(order[5 * epoch:5 * epoch + 5]) == list(range(5))
    assert order[:5] != order[5:10] or order[5:10] != order[10:15]
    resumed = [int(i) for i in example_order(5, 2, training=True, seed=3, start_step=3).take(9)]
    assert resumed == order[6:15]
    assert [int(i) for i in example_order(3, 2, training=False)] == [0, 1, 2]


def test_array_dataset_batches_rows():
    arrays = {"x": np.arange(10, dtype=np.int32).reshape(5, 2), "y": np.arange(5)}
    batches = list(array_dataset(arrays, 2, training=False))
    assert [b["x"].shape[0] for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(batches[2]["x"], [[8, 9]])


def test_tagging_arrays_put_labels_on_first_subtokens():
    tokenizer = ByteTokenizer()  # one token a byte: "Bob" = 3 tokens, " is" = 3 tokens
    sentences = [{"words": ["Bob", "is", "é"]}]
    arrays, starts = tagging_arrays(sentences, tokenizer, [[5, 1, 2]], 16)
    ids = arrays["token_ids"][0]
    # [CLS] B o b _ i s _ é(2 bytes) [SEP]
    assert starts == [[1, 4, 7]]
    assert ids[0] == tokenizer.bos_id and ids[10] == tokenizer.eos_id and ids[11] == 0
    assert tokenizer.detokenize(ids[1:10]).numpy().decode() == "Bob is é"
    expected_labels = np.zeros(16, np.int32)
    expected_labels[[1, 4, 7]] = [5, 1, 2]
    np.testing.assert_array_equal(arrays["labels"][0], expected_labels)
    np.testing.assert_array_equal(np.nonzero(arrays["sample_weight"][0])[0], [1, 4, 7])
    # Words past the row are cut (start -1) and carry no weight.
    arrays, starts = tagging_arrays(sentences, tokenizer, [[5, 1, 2]], 8)
    assert starts == [[1, 4, -1]] and arrays["sample_weight"].sum() == 2


def test_pack_segments_matches_a_python_reference(rng):
    # Random pairs and single texts against rows built by hand in Python: longest-first
    # lengths, [CLS] a [SEP] b [SEP], segment ids 0/1, 0-padding, never longer than T.
    for sequence_length in (3, 4, 7, 12):
        lengths = rng.integers(0, 12, size=(40, 2))
        first = [list(rng.integers(4, 50, n)) for n in lengths[:, 0]]
        second = [list(rng.integers(4, 50, n)) for n in lengths[:, 1]]
        packed = pack_segments(tf.ragged.constant(first, tf.int32),
                               tf.ragged.constant(second, tf.int32), sequence_length, 2, 3)
        single = pack_segments(tf.ragged.constant(first, tf.int32), None, sequence_length, 2, 3)
        for row, (a, b) in enumerate(zip(first, second)):
            kept_a, kept_b = _longest_first(len(a), len(b), sequence_length - 3)
            tokens = [2] + a[:kept_a] + [3] + b[:kept_b] + [3]
            segments = [0] * (kept_a + 2) + [1] * (kept_b + 1)
            pad = sequence_length - len(tokens)
            assert pad >= 0
            assert packed["token_ids"][row].numpy().tolist() == tokens + [0] * pad
            assert packed["segment_ids"][row].numpy().tolist() == segments + [0] * pad
            tokens = [2] + a[:sequence_length - 2] + [3]
            assert single["token_ids"][row].numpy().tolist() == \
                tokens + [0] * (sequence_length - len(tokens))


def test_pack_segments_refuses_pairs_of_unequal_batches():
    with pytest.raises(ValueError, match="`first` has 2 texts but `second` has 1"):
        pack_segments(tf.ragged.constant([[5], [6]]), tf.ragged.constant([[7]]), 8, 2, 3)


def test_classification_dataset_refuses_a_mix_of_pairs_and_single_texts():
    # Once, the example without a pair silently became "[CLS] c [SEP] [SEP]".
    examples = [{"text": "ab", "text_pair": "xyz"}, {"text": "c"}]
    with pytest.raises(ValueError, match="example 1 does not: give every example a `text_pair`"):
        classification_dataset(examples, ByteTokenizer(), [0, 1], 8, 2, training=False)
    with pytest.raises(ValueError, match="sequence_length=2 leaves no room for the 3 special"):
        classification_dataset(examples[:1], ByteTokenizer(), [0], 2, 1, training=False)


def test_array_dataset_refuses_arrays_of_unequal_rows():
    with pytest.raises(ValueError, match=r"same number of rows.*'x': 5, 'y': 4"):
        array_dataset({"x": np.zeros((5, 2)), "y": np.zeros(4)}, 2, training=False)


def test_tagging_arrays_refuse_tags_that_do_not_match_the_words():
    tokenizer = ByteTokenizer()
    sentences = [{"words": ["a", "b"]}]
    # Once, extra tags were silently dropped and missing ones raised a bare IndexError.
    with pytest.raises(ValueError, match="Sentence 0 has 2 words but 3 tag ids"):
        tagging_arrays(sentences, tokenizer, [[1, 2, 3]], 8)
    with pytest.raises(ValueError, match="Sentence 0 has 2 words but 1 tag ids"):
        tagging_arrays(sentences, tokenizer, [[1]], 8)
    with pytest.raises(ValueError, match="tag_ids has 2 entries for 1 sentences"):
        tagging_arrays(sentences, tokenizer, [[1, 2], [3]], 8)
    with pytest.raises(ValueError, match="sequence_length=1 leaves no room"):
        tagging_arrays(sentences, tokenizer, [[1, 2]], 1)
    assert tagging_arrays(sentences, tokenizer, None, 3)[1] == [[1, -1]]
