"""Position-wise feed-forward network of a Transformer block."""

import keras
from keras import ops

from keras_lm.layers.fused import gelu_tanh
from keras_lm.layers.initializers import clone_initializer

ACTIVATIONS = ("relu", "gelu", "swiglu")


@keras.saving.register_keras_serializable(package="keras_lm")
class FeedForward(keras.layers.Layer):
    """Two-layer MLP applied to every position: D -> F -> D.

        relu / gelu:  W2 act(x W1 + b1) + b2          (Vaswani et al., 2017)
        swiglu:       W2 (silu(x W1) * (x W3))        (Shazeer, 2020)

    Shape letters: B batch, T sequence, D width, F intermediate width.

    Args:
        intermediate_dim: int, F.
        activation: "relu", "gelu" or "swiglu".
        dropout: float, dropout after the output projection.
        use_bias: bool.
        kernel_initializer: initializer of the kernels.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, T, D].
        training: bool, enables dropout.

    Returns:
        [B, T, D].

    Example:
    >>> FeedForward(32, activation="swiglu")(keras.ops.ones((2, 3, 8))).shape
    TensorShape([2, 3, 8])

    Reference: Shazeer, 2020, https://arxiv.org/abs/2002.05202
    """

    def __init__(
        self,
        intermediate_dim,
        activation="gelu",
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS}. Received: activation={activation!r}"
            )
        if intermediate_dim is None or intermediate_dim < 1:
            raise ValueError(
                f"`intermediate_dim` must be a positive int. Received: {intermediate_dim}"
            )
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        dim = input_shape[-1]
        def common():
            return dict(
                use_bias=self.use_bias,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                dtype=self.dtype_policy,
            )

        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, name="intermediate", **common()
        )
        self.intermediate_dense.build(input_shape)
        self.gate_dense = None
        if self.activation == "swiglu":
            self.gate_dense = keras.layers.Dense(self.intermediate_dim, name="gate", **common())
            self.gate_dense.build(input_shape)
        self.output_dense = keras.layers.Dense(dim, name="output", **common())
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def call(self, inputs, training=None):
        hidden = self.intermediate_dense(inputs)  # (B, T, F)
        if self.activation == "swiglu":
            hidden = ops.silu(self.gate_dense(inputs)) * hidden
        elif self.activation == "gelu":
            hidden = gelu_tanh(hidden)  # fused outside XLA in bfloat16
        else:
            hidden = ops.relu(hidden)
        return self.dropout_layer(self.output_dense(hidden), training=training)  # (B, T, D)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
