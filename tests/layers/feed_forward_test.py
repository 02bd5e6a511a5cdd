import numpy as np
import pytest

from keras_lm.layers import FeedForward
from keras_lm.testing import run_layer_test


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


@pytest.mark.parametrize("activation", ["relu", "gelu", "swiglu"])
def test_matches_numpy(rng, activation):
    layer = FeedForward(12, activation=activation)
    x = rng.normal(size=(2, 3, 5)).astype("float32")
    out = np.array(layer(x))
    w1, b1 = np.array(layer.intermediate_dense.kernel), np.array(layer.intermediate_dense.bias)
    w2, b2 = np.array(layer.output_dense.kernel), np.array(layer.output_dense.bias)
    hidden = x @ w1 + b1
    if activation == "relu":
        hidden = np.maximum(hidden, 0)
    elif activation == "gelu":
        hidden = _gelu_tanh(hidden)
    else:
        gate = x @ np.array(layer.gate_dense.kernel) + np.array(layer.gate_dense.bias)
        hidden = gate / (1 + np.exp(-gate)) * hidden
    np.testing.assert_allclose(out, hidden @ w2 + b2, atol=1e-5)


def test_layer_contract(rng):
    run_layer_test(FeedForward, dict(intermediate_dim=8, activation="swiglu", dropout=0.1),
                   rng.normal(size=(2, 3, 4)).astype("float32"), expected_output_shape=(2, 3, 4),
                   mixed_precision_atol=5e-2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation"):
        FeedForward(8, activation="tanh")
    with pytest.raises(ValueError, match="intermediate_dim"):
        FeedForward(0)
