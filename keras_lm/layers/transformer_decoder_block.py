"""Transformer decoder block: causal self-attention, optional cross-attention, feed-forward."""

import keras

from keras_lm.layers.feed_forward import FeedForward
from keras_lm.layers.masks import merge_masks
from keras_lm.layers.multi_head_attention import MultiHeadAttention
from keras_lm.layers.rms_normalization import normalization
from keras_lm.layers.transformer_encoder_block import check_heads


@keras.saving.register_keras_serializable(package="keras_lm")
class TransformerDecoderBlock(keras.layers.Layer):
    """One decoder layer: masked self-attention, cross-attention (optional), feed-forward.

    Pre-norm (`norm_first=True`):
        x = x + Dropout(CausalSelfAttention(Norm(x)))
        x = x + Dropout(CrossAttention(Norm(x), encoder_sequence))   # if use_cross_attention
        x = x + FeedForward(Norm(x))
    Post-norm applies each norm after its residual sum instead (Vaswani et al., 2017).

    Without cross-attention this is a GPT block; with it, the decoder of an
    encoder-decoder Transformer.

    Shape letters: B batch, T decoder (new) tokens, S encoder length, D width,
    S_max cache length, K key/value heads, Dh = D // num_heads.

    Cache layout: [B, 2, K, S_max, Dh], the self-attention keys and values (see
    `MultiHeadAttention`). Decoding one token at a time with a cache gives the same
    outputs as the full-sequence call.

    Args:
        num_heads: int.
        intermediate_dim: int, feed-forward width.
        dropout: float.
        activation: "relu", "gelu" or "swiglu".
        norm: "layer_norm" or "rms_norm".
        norm_first: bool.
        num_key_value_heads: int or None, grouped-query self-attention.
        use_cross_attention: bool, add a cross-attention sublayer over `encoder_sequence`.
        rotary_max_wavelength: float or None, rotary positions in self-attention.
        layer_norm_epsilon: float.
        kernel_initializer: initializer of every kernel.
        **kwargs: base layer arguments.

    Call arguments:
        decoder_sequence: [B, T, D].
        encoder_sequence: [B, S, D], required iff `use_cross_attention`.
        decoder_padding_mask: bool [B, T] (or [B, S_max] with a cache), True = real token.
        decoder_attention_mask: bool [B, T, T] (or [B, T, S_max]), merged with the causal
            mask, e.g. to keep packed documents apart.
        encoder_padding_mask: bool [B, S].
        self_attention_cache: [B, 2, K, S_max, Dh] or None.
        self_attention_cache_update_index: int scalar, position of the first new token.
        positions: int [B, T], positions for rotary attention (default: from the index).
        training: bool.

    Returns:
        [B, T, D], or `(output, new_cache)` when a cache is given.

    Example:
    >>> block = TransformerDecoderBlock(num_heads=2, intermediate_dim=32)
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
        use_cross_attention=False,
        rotary_max_wavelength=None,
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
        self.use_cross_attention = use_cross_attention
        self.rotary_max_wavelength = rotary_max_wavelength
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        normalization(norm)  # validates `norm` early

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        dim = decoder_sequence_shape[-1]
        head_dim = check_heads(dim, self.num_heads)
        policy = self.dtype_policy

        def attention(name, rotary=None):
            return MultiHeadAttention(
                self.num_heads,
                head_dim,
                num_key_value_heads=self.num_key_value_heads,
                dropout=self.dropout,
                rotary_max_wavelength=rotary,
                kernel_initializer=self.kernel_initializer,
                dtype=policy,
                name=name,
            )

        def norm(name):
            layer = normalization(self.norm, self.layer_norm_epsilon, policy, name)
            layer.build(decoder_sequence_shape)
            return layer

        self.self_attention = attention("self_attention", self.rotary_max_wavelength)
        self.self_attention.build(decoder_sequence_shape, decoder_sequence_shape)
        self.self_attention_norm = norm("self_attention_norm")
        self.self_attention_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        if self.use_cross_attention:
            encoder_sequence_shape = encoder_sequence_shape or decoder_sequence_shape
            self.cross_attention = attention("cross_attention")
            self.cross_attention.build(decoder_sequence_shape, encoder_sequence_shape)
            self.cross_attention_norm = norm("cross_attention_norm")
            self.cross_attention_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        self.feed_forward = FeedForward(
            self.intermediate_dim,
            activation=self.activation,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer,
            dtype=policy,
            name="feed_forward",
        )
        self.feed_forward.build(decoder_sequence_shape)
        self.feed_forward_norm = norm("feed_forward_norm")
        self.built = True

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        positions=None,
        training=None,
    ):
        if self.use_cross_attention and encoder_sequence is None:
            raise ValueError(
                "This block was built with `use_cross_attention=True`, so `encoder_sequence` "
                "is required. Pass the encoder outputs, or build the block with "
                "use_cross_attention=False. Received: encoder_sequence=None"
            )
        if not self.use_cross_attention and encoder_sequence is not None:
            raise ValueError(
                "`encoder_sequence` was passed to a block built with "
                "`use_cross_attention=False`; build it with use_cross_attention=True to attend "
                f"to an encoder. Received: encoder_sequence.shape={tuple(encoder_sequence.shape)}"
            )
        if decoder_padding_mask is not None:
            decoder_padding_mask = keras.ops.cast(decoder_padding_mask, "bool")[:, None, :]
        self_mask = merge_masks(decoder_padding_mask, decoder_attention_mask)

        x = decoder_sequence
        residual = x
        if self.norm_first:
            x = self.self_attention_norm(x)
        attention_output = self.self_attention(
            x,
            x,
            attention_mask=self_mask,
            use_causal_mask=True,
            training=training,
            cache=self_attention_cache,
            cache_update_index=self_attention_cache_update_index,
            positions=positions,
        )
        if self_attention_cache is not None:
            attention_output, self_attention_cache = attention_output
        x = residual + self.self_attention_dropout(attention_output, training=training)
        if not self.norm_first:
            x = self.self_attention_norm(x)

        if self.use_cross_attention:
            residual = x
            if self.norm_first:
                x = self.cross_attention_norm(x)
            x = self.cross_attention(
                x, encoder_sequence, attention_mask=encoder_padding_mask, training=training
            )
            x = residual + self.cross_attention_dropout(x, training=training)
            if not self.norm_first:
                x = self.cross_attention_norm(x)

        residual = x
        if self.norm_first:
            x = self.feed_forward_norm(x)
        x = residual + self.feed_forward(x, training=training)
        if not self.norm_first:
            x = self.feed_forward_norm(x)
        if self_attention_cache is not None:
            return x, self_attention_cache
        return x

    def compute_output_shape(self, decoder_sequence_shape, encoder_sequence_shape=None,
                             self_attention_cache_shape=None):
        if self_attention_cache_shape is not None:
            return decoder_sequence_shape, self_attention_cache_shape  # (output, new_cache)
        return decoder_sequence_shape

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
                "use_cross_attention": self.use_cross_attention,
                "rotary_max_wavelength": self.rotary_max_wavelength,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
