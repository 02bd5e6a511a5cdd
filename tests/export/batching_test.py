import numpy as np
import pytest
import tensorflow as tf

from keras_lm.export.batching import continuations
from keras_lm.export.batching import keep_last
from keras_lm.export.batching import pack_prompts
from keras_lm.export.batching import score_windows

ROWS = [[5, 6, 7, 8, 9], [], [4], [10, 11]]


def _ragged(rows):
    return tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1)


@pytest.mark.parametrize("count", [0, 1, 2, 10])
def test_keep_last_equals_python_slicing(count):
    kept = keep_last(_ragged(ROWS), tf.constant(count)).to_list()
    assert kept == [row[len(row) - min(len(row), count):] for row in ROWS]


def test_pack_prompts_pads_truncates_and_starts_empty_prompts():
    tokens, lengths = pack_prompts(_ragged(ROWS), start_id=3, room=tf.constant(3), width=6)
    assert tokens.shape.as_list() == [4, 6]
    expected = np.zeros((4, 6), np.int32)
    for i, row in enumerate([[7, 8, 9], [3], [4], [10, 11]]):
        expected[i, :len(row)] = row
    np.testing.assert_array_equal(tokens.numpy(), expected)
    np.testing.assert_array_equal(lengths.numpy(), [3, 1, 1, 2])


def test_pack_prompts_in_a_graph_keeps_the_width_static():
    fn = tf.function(lambda ids, room: pack_prompts(ids, 3, room, 8))
    tokens, _ = fn(_ragged(ROWS), tf.constant(4))
    assert tokens.shape.as_list() == [4, 8]
    graph_tokens = fn.get_concrete_function(
        tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1),
        tf.TensorSpec([], tf.int32)).structured_outputs[0]
    assert graph_tokens.shape.as_list() == [None, 8]  # what lets XLA compile once per B


def test_continuations_cut_at_stop_and_max_new_tokens():
    stop = 3
    tokens = tf.constant([
        [1, 2, 9, 9, 9, 9],   # prompt [1, 2], runs to the end: 3 new tokens kept (max 3)
        [1, 8, stop, 0, 0, 0],  # prompt [1], one token then the stop (dropped)
        [1, 2, 3, 7, 7, 0],   # prompt [1, 2, 3]: a stop inside the prompt is not a stop
        [1, stop, 0, 0, 0, 0],  # prompt [1]: stops at once
    ], tf.int32)
    lengths = tf.constant([2, 1, 3, 1])
    end = tf.constant([6, 3, 5, 2])
    got = continuations(tokens, lengths, end, tf.constant(3), stop).to_list()
    assert got == [[9, 9, 9], [8], [7, 7], []]


def test_score_windows_cover_every_label_once():
    separator, width = 3, 4
    inputs, labels, weights, text_index = score_windows(_ragged(ROWS), separator, width)
    longest = max(len(row) for row in ROWS) + 1  # 6 inputs for the 5-token row
    windows = -(-longest // width)  # 2
    assert inputs.shape.as_list() == [len(ROWS) * windows, width]
    np.testing.assert_array_equal(text_index.numpy(), np.repeat(np.arange(len(ROWS)), windows))
    inputs, labels, weights = (x.numpy().reshape(len(ROWS), -1) for x in
                               (inputs, labels, weights))
    for b, row in enumerate(ROWS):
        sequence = [separator] + row + [separator]
        n = len(row) + 1
        np.testing.assert_array_equal(inputs[b, :n], sequence[:-1])
        np.testing.assert_array_equal(labels[b, :n], sequence[1:])
        np.testing.assert_array_equal(weights[b], [1.0] * n + [0.0] * (inputs.shape[1] - n))


def test_score_windows_shrink_to_the_longest_text():
    inputs, _, _, _ = score_windows(_ragged([[5], []]), 3, 16)
    assert inputs.shape.as_list() == [2, 2]  # no padding up to the context for short texts


def test_score_windows_of_an_empty_batch_are_empty():
    empty = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int32), tf.zeros([0], tf.int64))
    inputs, labels, weights, text_index = score_windows(empty, 3, 16)
    assert inputs.shape[0] == labels.shape[0] == weights.shape[0] == text_index.shape[0] == 0
