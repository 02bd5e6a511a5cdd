"""Transformer encoder block: bidirectional self-attention and a feed-forward network."""

import keras

from keras_lm.layers.feed_forward import FeedForward
from keras_lm.layers.masks import merge_masks
from keras_lm.layers.multi_head_attention import MultiHeadAttention
from keras_lm.layers.rms_normalization import normalization


def check_heads(hidden_dim, num_heads):
    """Returns the per-head size, or raises if the width does not split into heads."""
    if hidden_dim % num_heads:
        raise ValueError(
            f"The model width ({hidden_dim}) must be divisible by `num_heads` ({num_heads}) "
            "so that every head gets width // num_heads features. Change one of them. "
            f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
        )
    return hidden_dim // num_heads


@keras.saving.register_keras_serializable(package="keras_lm")
class TransformerEncoderBlock(keras.layers.Layer):
    """One encoder layer of Vaswani et al. (2017).

    Pre-norm (`norm_first=True`, GPT-2 / most modern models):
        x = x + Dropout(SelfAttention(Norm(x)));  x = x + FeedForward(Norm(x))
    Post-norm (`norm_first=False`, the original Transformer and BERT):
        x = Norm(x + Dropout(SelfAttention(x)));  x = Norm(x + FeedForward(x))

    Shape letters: B batch, T sequence, D width (divisible by num_heads).

    Args:
        num_heads: int, attention heads.
        intermediate_dim: int, feed-forward width.
        dropout: float, dropout on attention probabilities and residual branches.
        activation: "relu", "gelu" or "swiglu".
        norm: "layer_norm" or "rms_norm".
        norm_first: bool, pre-norm (True) or post-norm (False).
        num_key_value_heads: int or None, grouped-query attention.
        layer_norm_epsilon: float.
        kernel_initializer: initializer of every kernel.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, T, D].
        padding_mask: bool [B, T], True for real tokens.
        attention_mask: bool [B, T, T], e.g. to keep packed documents apart.
        training: bool.

    Returns:
        [B, T, D].

    Example:
    >>> block = TransformerEncoderBlock(num_heads=2, intermediate_dim=32)
    >>> block(keras.ops.ones((2, 5, 16))).shape
    TensorShape([2, 5, 16])
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        activation="gelu",
        norm="layer_norm",
        norm_first=True,
        num_key_value_heads=None,
        layer_norm_epsilon=1e-5,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = activation
        self.norm = norm
        self.norm_first = norm_first
        self.num_key_value_heads = num_key_value_heads
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        normalization(norm)  # validates `norm` early

    def build(self, inputs_shape):
        dim = inputs_shape[-1]
        head_dim = check_heads(dim, self.num_heads)
        self.self_attention = MultiHeadAttention(
            self.num_heads,
            head_dim,
            num_key_value_heads=self.num_key_value_heads,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="self_attention",
        )
        self.self_attention.build(inputs_shape, inputs_shape)
        self.attention_norm = normalization(
            self.norm, self.layer_norm_epsilon, self.dtype_policy, "attention_norm"
        )
        self.attention_norm.build(inputs_shape)
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.feed_forward = FeedForward(
            self.intermediate_dim,
            activation=self.activation,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="feed_forward",
        )
        self.feed_forward.build(inputs_shape)
        self.feed_forward_norm = normalization(
            self.norm, self.layer_norm_epsilon, self.dtype_policy, "feed_forward_norm"
        )
        self.feed_forward_norm.build(inputs_shape)
        self.built = True

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None):
        if padding_mask is not None:
            padding_mask = keras.ops.cast(padding_mask, "bool")[:, None, :]  # (B, 1, T)
        mask = merge_masks(padding_mask, attention_mask)
        x = inputs
        residual = x
        if self.norm_first:
            x = self.attention_norm(x)
        x = self.self_attention(x, x, attention_mask=mask, training=training)
        x = residual + self.attention_dropout(x, training=training)
        if not self.norm_first:
            x = self.attention_norm(x)
        residual = x
        if self.norm_first:
            x = self.feed_forward_norm(x)
        x = residual + self.feed_forward(x, training=training)
        if not self.norm_first:
            x = self.feed_forward_norm(x)
        return x

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "activation": self.activation,
                "norm": self.norm,
                "norm_first": self.norm_first,
                "num_key_value_heads": self.num_key_value_heads,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
