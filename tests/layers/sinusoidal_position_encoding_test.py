import numpy as np
import pytest

from keras_lm.layers import SinusoidalPositionEncoding
from keras_lm.testing import run_layer_test


def _formula(positions, dim, max_wavelength=10000.0):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    pe = np.zeros((len(positions), dim))
    for row, pos in enumerate(positions):
        for i in range(dim // 2):
            pe[row, 2 * i] = np.sin(pos / max_wavelength ** (2 * i / dim))
            pe[row, 2 * i + 1] = np.cos(pos / max_wavelength ** (2 * i / dim))
    return pe


def test_matches_formula():
    layer = SinusoidalPositionEncoding()
    out = layer(np.zeros((2, 9, 12), "float32"))
    np.testing.assert_allclose(out[0], _formula(range(9), 12), atol=1e-5)


def test_start_index_and_explicit_positions():
    layer = SinusoidalPositionEncoding(max_wavelength=100.0)
    shifted = layer(np.zeros((1, 3, 8), "float32"), start_index=5)
    np.testing.assert_allclose(shifted[0], _formula([5, 6, 7], 8, 100.0), atol=1e-5)
    positions = np.array([[0, 1, 0], [2, 3, 4]])
    explicit = np.array(layer(np.zeros((2, 3, 8), "float32"), positions=positions))
    np.testing.assert_allclose(explicit[0], _formula([0, 1, 0], 8, 100.0), atol=1e-5)
    np.testing.assert_allclose(explicit[1], _formula([2, 3, 4], 8, 100.0), atol=1e-5)


def test_layer_contract():
    x = np.random.default_rng(0).normal(size=(2, 4, 6)).astype("float32")
    run_layer_test(SinusoidalPositionEncoding, {"max_wavelength": 500.0}, x,
                   expected_output_shape=(1, 4, 6), run_training=False,
                   mixed_precision_atol=1e-2)


def test_odd_width_is_an_error():
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositionEncoding()(np.zeros((1, 3, 5), "float32"))


def test_wrong_rank_is_an_error():
    # A [B, D] input used to be read as [T, D] and silently give a [1, B, D] encoding.
    with pytest.raises(ValueError, match="rank 3"):
        SinusoidalPositionEncoding()(np.zeros((2, 8), "float32"))


def test_non_positive_max_wavelength_is_an_error():
    # max_wavelength=0 used to give NaN encodings silently.
    with pytest.raises(ValueError, match="max_wavelength"):
        SinusoidalPositionEncoding(max_wavelength=0)
