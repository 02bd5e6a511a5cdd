"""Fixed sinusoidal position encoding."""

import keras
from keras import ops

from keras_lm.layers.position_utils import token_positions


@keras.saving.register_keras_serializable(package="keras_lm")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Sinusoidal position encoding of Vaswani et al. (2017), section 3.5.

        PE(pos, 2i)   = sin(pos / max_wavelength^(2i / D))
        PE(pos, 2i+1) = cos(pos / max_wavelength^(2i / D))

    Returns the encoding only (add it to the embeddings yourself, as
    `TokenAndPositionEmbedding` does). No weights, so any length works.

    Shape letters: B batch, T sequence, D features (even).

    Args:
        max_wavelength: float, 10000 in the paper.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, T, D]; only its shape is used.
        start_index: int or scalar tensor, position of the first token (cached decoding).
        positions: optional int [B, T] or [T]; explicit positions (packed documents).

    Returns:
        [B, T, D] (or [1, T, D] without explicit batch positions) in the compute dtype;
        broadcasts against `inputs`.

    Example:
    >>> SinusoidalPositionEncoding()(keras.ops.zeros((2, 4, 6))).shape
    TensorShape([1, 4, 6])

    Reference: Vaswani et al., 2017, https://arxiv.org/abs/1706.03762
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
        if len(inputs.shape) != 3:
            raise ValueError(
                "SinusoidalPositionEncoding expects inputs of rank 3 [batch, sequence, "
                f"features]. Received: inputs.shape={tuple(inputs.shape)}"
            )
        dim = inputs.shape[-1]
        if dim is None or dim % 2:
            raise ValueError(
                "SinusoidalPositionEncoding interleaves sin and cos, so the feature size must "
                f"be even. Received: inputs.shape={tuple(inputs.shape)}"
            )
        pos = token_positions(inputs, start_index, positions)  # (B or 1, T)
        exponent = ops.arange(0, dim, 2, dtype="float32") / dim  # 2i / D
        angles = pos[:, :, None] / ops.power(
            ops.cast(self.max_wavelength, "float32"), exponent
        )  # (B, T, D/2)
        encoding = ops.stack([ops.sin(angles), ops.cos(angles)], axis=-1)  # (B, T, D/2, 2)
        encoding = ops.reshape(encoding, (ops.shape(angles)[0], ops.shape(angles)[1], dim))
        return ops.cast(encoding, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
