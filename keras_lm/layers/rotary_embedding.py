"""Rotary position embedding (RoPE)."""

import keras
from keras import ops

from keras_lm.layers.position_utils import token_positions


@keras.saving.register_keras_serializable(package="keras_lm")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (Su et al., 2021), applied to queries and keys.

    Each pair of features (x_{2i}, x_{2i+1}) of a token at position m is rotated by the
    angle m * theta_i, theta_i = max_wavelength^(-2i / D):

        x'_{2i}   = x_{2i} cos(m theta_i) - x_{2i+1} sin(m theta_i)
        x'_{2i+1} = x_{2i} sin(m theta_i) + x_{2i+1} cos(m theta_i)

    so the dot product of a rotated query at m and key at n depends on m - n only.
    Computed in float32, returned in the input dtype. No weights.

    Shape letters: B batch, T sequence, H heads (optional axes), D feature size (even).

    Args:
        max_wavelength: float, the base of the geometric wavelength progression.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, T, ..., D], e.g. [B, T, H, D] queries or keys.
        start_index: int or scalar tensor, position of the first token (cached decoding).
        positions: optional int [B, T] or [T]; explicit positions, overriding start_index.

    Returns:
        Tensor of the input's shape and dtype.

    Example:
    >>> rope = RotaryEmbedding()
    >>> rope(keras.ops.ones((1, 3, 2, 8)), start_index=4).shape
    TensorShape([1, 3, 2, 8])

    Reference: Su et al., 2021, https://arxiv.org/abs/2104.09864
    """

    def __init__(self, max_wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        if max_wavelength <= 0:
            raise ValueError(
                f"`max_wavelength` must be positive. Received: max_wavelength={max_wavelength}"
            )
        self.max_wavelength = max_wavelength
        self.built = True

    def call(self, inputs, start_index=0, positions=None):
        if len(inputs.shape) < 3:
            raise ValueError(
                "RotaryEmbedding expects inputs of rank 3 or more [batch, sequence, ..., "
                f"features]. Received: inputs.shape={tuple(inputs.shape)}"
            )
        dim = inputs.shape[-1]
        if dim is None or dim % 2:
            raise ValueError(
                "RotaryEmbedding rotates feature pairs, so the last axis must be even. "
                f"Received: inputs.shape={tuple(inputs.shape)}"
            )
        pos = token_positions(inputs, start_index, positions)  # (B or 1, T)
        exponent = ops.arange(0, dim, 2, dtype="float32") / dim
        inverse_frequency = ops.power(ops.cast(self.max_wavelength, "float32"), -exponent)
        angles = pos[:, :, None] * inverse_frequency  # (B, T, D/2)
        for _ in range(len(inputs.shape) - 3):
            angles = ops.expand_dims(angles, axis=2)  # (B, T, 1, D/2) for head axes
        cos, sin = ops.cos(angles), ops.sin(angles)
        x = ops.cast(inputs, "float32")
        pairs = ops.reshape(x, tuple(ops.shape(x)[:-1]) + (dim // 2, 2))  # (..., D/2, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        rotated = ops.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
        return ops.cast(ops.reshape(rotated, ops.shape(x)), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
