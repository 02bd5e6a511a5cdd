import numpy as np

from keras_lm.layers import causal_mask
from keras_lm.layers import positions_from_segment_ids
from keras_lm.layers import segment_mask


def test_causal_mask_with_offset():
    np.testing.assert_array_equal(causal_mask(3, 3), np.tril(np.ones((3, 3), bool)))
    # Two new tokens at positions 2 and 3 of a 5-slot cache.
    expected = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], bool)
    np.testing.assert_array_equal(causal_mask(2, 5, start_index=2), expected)


def test_segment_mask_and_positions():
    segments = np.array([[1, 1, 2, 2, 2, 0]])
    mask = np.array(segment_mask(segments))[0]
    for t in range(6):
        for s in range(6):
            assert mask[t, s] == (segments[0, t] == segments[0, s] != 0)
    np.testing.assert_array_equal(positions_from_segment_ids(segments), [[0, 1, 0, 1, 2, 0]])
