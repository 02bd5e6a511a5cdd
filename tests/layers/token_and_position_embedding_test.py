import numpy as np
import pytest

from keras_lm.layers import SinusoidalPositionEncoding
from keras_lm.layers import TokenAndPositionEmbedding
from keras_lm.testing import run_layer_test


@pytest.mark.parametrize("position_encoding", ["learned", "sinusoidal", "none"])
def test_sum_of_token_and_position(position_encoding):
    layer = TokenAndPositionEmbedding(20, 8, 6, position_encoding=position_encoding)
    ids = np.array([[3, 4, 5]])
    out = np.array(layer(ids, start_index=2))
    tokens = np.array(layer.token_embedding.embeddings)[[3, 4, 5]]
    if position_encoding == "learned":
        positions = np.array(layer.position_layer.position_embeddings)[2:5]
    elif position_encoding == "sinusoidal":
        positions = np.array(SinusoidalPositionEncoding()(np.zeros((1, 3, 6)), start_index=2))[0]
    else:
        positions = 0.0
    np.testing.assert_allclose(out[0], tokens + positions, atol=1e-6)


def test_layer_contract():
    run_layer_test(TokenAndPositionEmbedding,
                   dict(vocabulary_size=12, sequence_length=6, embedding_dim=4),
                   np.array([[1, 2, 3], [4, 5, 11]]), expected_output_shape=(2, 3, 4),
                   mixed_precision_atol=1e-2)


def test_bad_position_encoding():
    with pytest.raises(ValueError, match="position_encoding"):
        TokenAndPositionEmbedding(10, 4, 4, position_encoding="alibi")
