"""Root-mean-square layer normalization."""

import keras
from keras import ops

from keras_lm.layers.layer_normalization import LayerNormalization


@keras.saving.register_keras_serializable(package="keras_lm")
class RMSNormalization(keras.layers.Layer):
    """RMSNorm (Zhang & Sennrich, 2019): y = x / sqrt(mean(x^2) + epsilon) * scale.

    No centring and no bias. Computed in float32 and returned in the compute dtype.

    Args:
        epsilon: float added to the mean square.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [..., D].

    Returns:
        Tensor of the input's shape.

    Reference: Zhang & Sennrich, 2019, https://arxiv.org/abs/1910.07467
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)
        return ops.cast(x * ops.cast(self.scale, "float32"), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


NORMS = ("layer_norm", "rms_norm")


def normalization(norm, epsilon=1e-5, dtype=None, name=None):
    """Builds the norm layer named by `norm` ("layer_norm" or "rms_norm")."""
    if norm == "layer_norm":
        return LayerNormalization(epsilon=epsilon, dtype=dtype, name=name)
    if norm == "rms_norm":
        return RMSNormalization(epsilon=epsilon, dtype=dtype, name=name)
    raise ValueError(f"`norm` must be one of {NORMS}. Received: norm={norm!r}")
