"""Layer normalisation: Keras's layer, fused outside XLA in reduced precision."""

import keras

from keras_lm.layers.fused import layer_norm
from keras_lm.layers.fused import use_fused_kernels


@keras.saving.register_keras_serializable(package="keras_lm")
class LayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` (Ba et al., 2016) with a faster path for bfloat16.

        y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta, over the last axis

    The same layer, weights and config as Keras's (it takes all of its arguments). For a
    bfloat16 or float16 input in the layer's compute dtype, outside XLA (the
    `mixed_bfloat16` training step on CPU), with the default last axis, centre and scale,
    the computation and its gradient each run as one XLA kernel in float32
    (`keras_lm.layers.fused`) instead of about fifteen separate ops; the value is the same
    up to float32 rounding. Everything else is Keras's own call.

    Call arguments:
        inputs: [..., D].

    Returns:
        [..., D], the layer's compute dtype.
    """

    def call(self, inputs):
        fusible = (
            self.center
            and self.scale
            and not self.rms_scaling
            and self.axis in (-1, [-1], len(inputs.shape) - 1, [len(inputs.shape) - 1])
            and use_fused_kernels(inputs)
            # The normal mixed-precision case; the fused result has the input's dtype.
            and keras.backend.standardize_dtype(inputs.dtype) == self.compute_dtype
        )
        if not fusible:
            return super().call(inputs)
        return layer_norm(inputs, self.gamma.value, self.beta.value, self.epsilon)
