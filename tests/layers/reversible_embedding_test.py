import keras
import numpy as np
import pytest

from keras_lm.layers import ReversibleEmbedding
from keras_lm.testing import run_layer_test


@pytest.mark.parametrize("tie_weights", [True, False])
def test_reverse_is_the_transpose(rng, tie_weights):
    layer = ReversibleEmbedding(11, 4, tie_weights=tie_weights)
    ids = np.array([[1, 2, 10]])
    embedded = np.array(layer(ids))
    np.testing.assert_array_equal(embedded[0], np.array(layer.embeddings)[[1, 2, 10]])
    hidden = rng.normal(size=(1, 3, 4)).astype("float32")
    logits = np.array(layer(hidden, reverse=True))
    kernel = np.array(layer.embeddings).T if tie_weights else np.array(layer.reverse_embeddings)
    np.testing.assert_allclose(logits, hidden @ kernel, atol=1e-5)
    assert len(layer.trainable_weights) == (1 if tie_weights else 2)


def test_logits_are_float32_under_mixed_precision(rng):
    layer = ReversibleEmbedding(11, 4, dtype="mixed_bfloat16")
    hidden = layer(np.array([[1, 2]]))
    assert hidden.dtype == "bfloat16"
    assert layer(hidden, reverse=True).dtype == "float32"


@pytest.mark.parametrize("tie_weights", [True, False])
def test_layer_contract(tie_weights):
    # The forward direction never touches the untied reverse kernel, so only the tied
    # variant runs the "every weight trains" step; the LM round trip below covers both.
    run_layer_test(ReversibleEmbedding, {"input_dim": 9, "output_dim": 4,
                                         "tie_weights": tie_weights},
                   np.array([[1, 2, 3], [4, 5, 8]]), expected_output_shape=(2, 3, 4),
                   run_training=tie_weights)


@pytest.mark.parametrize("tie_weights", [True, False])
def test_lm_model_round_trip(tmp_path, tie_weights):
    """A tiny LM (embed -> reverse) survives .keras save/load with identical logits."""
    embedding = ReversibleEmbedding(9, 4, tie_weights=tie_weights)
    ids = keras.Input((3,), dtype="int32")
    model = keras.Model(ids, embedding(embedding(ids), reverse=True))
    x = np.array([[1, 2, 3]])
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(reloaded.predict_on_batch(x), model.predict_on_batch(x))
