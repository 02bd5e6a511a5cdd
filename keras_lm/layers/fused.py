"""Element-wise chains run as one XLA kernel each, for reduced precision outside XLA.

Under `mixed_bfloat16` on CPU the training step runs without XLA (oneDNN's bfloat16 matmuls
are twice XLA:CPU's, see `keras_lm.training.resolve_jit_compile`), so every element-wise op
is its own kernel that reads and writes bfloat16 tensors in memory. The tanh GELU of the
feed-forward layer is ten such kernels forward and backward and a layer norm (which Keras
computes in float32, with casts in and out) about fifteen. Here each chain is one
small XLA function forward and one backward, computed in float32 inside (for GELU more
accurate than bfloat16 op by op) with the result cast back to the input's dtype.

Inside a function that XLA already compiles (Keras's `jit_compile=True` step, the
decoding loops) and for float32 inputs the plain ops are used, so those results are
unchanged.
"""

import math

import keras
from keras import ops

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715
_REDUCED_PRECISION = ("bfloat16", "float16")


def compiled_by_xla():
    """Whether the function being traced is compiled by XLA (`tf.function(jit_compile=True)`,
    e.g. Keras's `jit_compile=True` train step); False when running eagerly."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow without these modules
        return True
    return control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph())


def use_fused_kernels(x):
    """Whether `x` takes the fused path: a TensorFlow tensor in bfloat16 or float16,
    outside XLA."""
    return (
        keras.backend.backend() == "tensorflow"
        and keras.backend.standardize_dtype(x.dtype) in _REDUCED_PRECISION
        and not compiled_by_xla()
    )


def gelu_tanh(x):
    """The tanh approximation of GELU (Hendrycks & Gimpel, 2016), as `ops.gelu(x,
    approximate=True)`:

        gelu(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))

    Args:
        x: any shape.

    Returns:
        `x`'s shape and dtype. Fused (see the module docstring) for bfloat16 / float16
        outside XLA; `ops.gelu` otherwise.
    """
    if not use_fused_kernels(x):
        return ops.gelu(x, approximate=True)
    return _fused_gelu_tanh()(x)


_FUNCTIONS = {}


def _fused_gelu_tanh():
    """The fused GELU with its fused gradient (built once, TensorFlow imported lazily)."""
    if "gelu_tanh" in _FUNCTIONS:
        return _FUNCTIONS["gelu_tanh"]
    import tensorflow as tf

    def inner(x):
        return _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def forward(x):
        x32 = tf.cast(x, tf.float32)
        return tf.cast(0.5 * x32 * (1.0 + tf.tanh(inner(x32))), x.dtype)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def backward(x, upstream):
        # d gelu / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
        x32 = tf.cast(x, tf.float32)
        t = tf.tanh(inner(x32))
        slope = 0.5 * (1.0 + t) + (
            0.5 * x32 * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * x32 * x32)
        )
        return tf.cast(tf.cast(upstream, tf.float32) * slope, x.dtype)

    @tf.custom_gradient
    def gelu(x):
        return forward(x), lambda upstream: backward(x, upstream)

    _FUNCTIONS["gelu_tanh"] = gelu
    return gelu


def layer_norm(x, gamma, beta, epsilon):
    """Layer normalisation over the last axis (Ba et al., 2016), computed in float32:

        y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta

    The value of `ops.layer_normalization(x, gamma, beta, axis=-1, epsilon=epsilon)`.

    Args:
        x: [..., D], bfloat16 or float16 (`use_fused_kernels(x)` must hold).
        gamma: [D], the scale (a tensor or a variable).
        beta: [D], the offset (a tensor or a variable).
        epsilon: float.

    Returns:
        [..., D], `x`'s dtype.
    """
    import tensorflow as tf

    # Tensors, not variables, go into the custom gradient: the variables are read here.
    gamma, beta = tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)
    return _fused_layer_norm(float(epsilon))(x, gamma, beta)


def _fused_layer_norm(epsilon):
    """The fused layer norm over the last axis with its fused gradient, per epsilon."""
    key = ("layer_norm", epsilon)
    if key in _FUNCTIONS:
        return _FUNCTIONS[key]
    import tensorflow as tf

    def normalized(x32):
        mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
        centred = x32 - mean
        variance = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
        inverse_std = tf.math.rsqrt(variance + epsilon)
        return centred * inverse_std, inverse_std

    @tf.function(jit_compile=True, reduce_retracing=True)
    def forward(x, gamma, beta):
        x_hat, _ = normalized(tf.cast(x, tf.float32))
        return tf.cast(x_hat * tf.cast(gamma, tf.float32) + tf.cast(beta, tf.float32), x.dtype)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def backward(x, gamma, upstream):
        # With x_hat = (x - mean) r, r = 1 / sqrt(var + epsilon), g = upstream * gamma:
        #   d beta = sum over rows of upstream, d gamma = sum over rows of upstream * x_hat,
        #   d x = r (g - mean(g) - x_hat mean(g x_hat)), means over the last axis.
        x_hat, inverse_std = normalized(tf.cast(x, tf.float32))
        upstream = tf.cast(upstream, tf.float32)
        rows = tf.range(tf.rank(upstream) - 1)
        d_beta = tf.reduce_sum(upstream, axis=rows)
        d_gamma = tf.reduce_sum(upstream * x_hat, axis=rows)
        g = upstream * tf.cast(gamma, tf.float32)
        d_x = inverse_std * (
            g
            - tf.reduce_mean(g, axis=-1, keepdims=True)
            - x_hat * tf.reduce_mean(g * x_hat, axis=-1, keepdims=True)
        )
        return tf.cast(d_x, x.dtype), tf.cast(d_gamma, gamma.dtype), d_beta

    @tf.custom_gradient
    def norm(x, gamma, beta):
        def grad(upstream):
            d_x, d_gamma, d_beta = backward(x, gamma, upstream)
            return d_x, d_gamma, tf.cast(d_beta, beta.dtype)

        return forward(x, gamma, beta), grad

    _FUNCTIONS[key] = norm
    return norm

