import numpy as np
import pytest

from keras_lm.layers import PositionEmbedding
from keras_lm.testing import run_layer_test


def test_slices_the_table():
    layer = PositionEmbedding(sequence_length=10)
    out = np.array(layer(np.zeros((2, 4, 3), "float32")))
    table = np.array(layer.position_embeddings)
    np.testing.assert_array_equal(out[0], table[:4])
    np.testing.assert_array_equal(layer(np.zeros((1, 2, 3)), start_index=6)[0], table[6:8])
    gathered = layer(np.zeros((2, 3, 3)), positions=np.array([[0, 1, 0], [4, 5, 6]]))
    np.testing.assert_array_equal(gathered[1], table[4:7])
    np.testing.assert_array_equal(gathered[0], table[[0, 1, 0]])


def test_tensor_start_index_under_xla():
    """A start computed inside a compiled function (the decoding loop's) reads the right rows."""
    import tensorflow as tf

    layer = PositionEmbedding(sequence_length=10)
    layer.build((None, 3, 4))
    table = np.array(layer.position_embeddings)
    embed = tf.function(lambda start: layer(tf.zeros((1, 3, 4)), start_index=start),
                        jit_compile=True)
    for start in (0, 5, 7):
        np.testing.assert_array_equal(embed(tf.constant(start))[0], table[start:start + 3])


def test_layer_contract(rng):
    run_layer_test(PositionEmbedding, {"sequence_length": 8},
                   rng.normal(size=(2, 5, 4)).astype("float32"),
                   expected_output_shape=(1, 5, 4), mixed_precision_atol=1e-2)


def test_sequence_longer_than_table_is_an_error():
    layer = PositionEmbedding(sequence_length=4)
    with pytest.raises(ValueError, match="sequence_length=4"):
        layer(np.zeros((1, 5, 2), "float32"))
    with pytest.raises(ValueError, match="truncate"):
        layer(np.zeros((1, 2, 2), "float32"), start_index=3)
    with pytest.raises(ValueError, match="sequence_length"):
        PositionEmbedding(sequence_length=0)


def test_wrong_rank_is_an_error():
    # A [B, D] input used to be read as [B, T] and fail with a misleading length error.
    with pytest.raises(ValueError, match="rank 3"):
        PositionEmbedding(sequence_length=4)(np.zeros((2, 8), "float32"))
