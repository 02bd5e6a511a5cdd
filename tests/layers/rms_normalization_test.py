import keras
import numpy as np
import pytest

from keras_lm.layers import RMSNormalization
from keras_lm.layers import normalization
from keras_lm.testing import run_layer_test


def test_matches_formula_and_keras(rng):
    x = rng.normal(size=(2, 3, 6)).astype("float32")
    layer = RMSNormalization(epsilon=1e-6)
    out = np.array(layer(x))
    expected = x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    if hasattr(keras.layers, "RMSNormalization"):
        np.testing.assert_allclose(out, keras.layers.RMSNormalization(epsilon=1e-6)(x), atol=1e-5)


def test_layer_contract(rng):
    run_layer_test(RMSNormalization, {"epsilon": 1e-5}, rng.normal(size=(2, 3, 4)).astype("float32"),
                   expected_output_shape=(2, 3, 4), mixed_precision_atol=5e-2)


def test_normalization_factory():
    assert isinstance(normalization("layer_norm"), keras.layers.LayerNormalization)
    assert isinstance(normalization("rms_norm"), RMSNormalization)
    with pytest.raises(ValueError, match="norm"):
        normalization("batch_norm")
