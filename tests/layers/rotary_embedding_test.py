import numpy as np
import pytest

from keras_lm.layers import RotaryEmbedding
from keras_lm.testing import run_layer_test


def _numpy_rope(x, positions, max_wavelength=10000.0):
    """Rotates feature pairs (2i, 2i+1) of x [T, D] by positions[t] * theta_i."""
    out = np.empty_like(x, dtype="float64")
    dim = x.shape[-1]
    for t, m in enumerate(positions):
        for i in range(dim // 2):
            theta = max_wavelength ** (-2 * i / dim)
            c, s = np.cos(m * theta), np.sin(m * theta)
            a, b = x[t, 2 * i], x[t, 2 * i + 1]
            out[t, 2 * i], out[t, 2 * i + 1] = a * c - b * s, a * s + b * c
    return out


def test_matches_numpy_reference(rng):
    x = rng.normal(size=(1, 6, 2, 8)).astype("float32")  # (B, T, H, D)
    out = np.array(RotaryEmbedding()(x, start_index=3))
    for head in range(2):
        np.testing.assert_allclose(out[0, :, head], _numpy_rope(x[0, :, head], range(3, 9)),
                                   atol=1e-5)


def test_score_depends_only_on_relative_position(rng):
    rope = RotaryEmbedding()
    q = rng.normal(size=(1, 1, 1, 16)).astype("float32")
    k = rng.normal(size=(1, 1, 1, 16)).astype("float32")

    def score(m, n):
        rq = np.array(rope(q, positions=np.array([m])))
        rk = np.array(rope(k, positions=np.array([n])))
        return float(np.sum(rq * rk))

    for m, n in [(0, 0), (5, 2), (9, 30)]:
        for shift in (1, 17, 250):
            assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)  # not position-blind


def test_rotation_preserves_norm(rng):
    x = rng.normal(size=(2, 5, 3, 8)).astype("float32")
    out = np.array(RotaryEmbedding()(x, start_index=7))
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-5)


def test_layer_contract(rng):
    x = rng.normal(size=(2, 4, 2, 6)).astype("float32")
    run_layer_test(RotaryEmbedding, {"max_wavelength": 500.0}, x,
                   expected_output_shape=(2, 4, 2, 6), run_training=False,
                   mixed_precision_atol=5e-2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding()(np.zeros((1, 3, 1, 5), "float32"))
    with pytest.raises(ValueError, match="max_wavelength"):
        RotaryEmbedding(max_wavelength=0)


def test_rank_two_input_is_a_clear_error():
    with pytest.raises(ValueError, match="rank 3 or more"):
        RotaryEmbedding()(np.zeros((2, 8), "float32"))
