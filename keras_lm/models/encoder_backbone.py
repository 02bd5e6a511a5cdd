"""BERT-style bidirectional Transformer encoder: ids in, contextual vectors out."""

import keras
from keras import ops

from keras_lm.layers import TokenAndPositionEmbedding
from keras_lm.layers import TransformerEncoderBlock
from keras_lm.layers import normalization

POSITION_ENCODINGS = ("learned", "sinusoidal")
POOLINGS = ("first", "mean")


@keras.saving.register_keras_serializable(package="keras_lm")
class EncoderBackbone(keras.Model):
    """Token + segment + position embeddings, N encoder blocks, a final norm, a pooled vector.

        h_0 = TokenEmbedding(x) + SegmentEmbedding(s) + PositionEncoding(0..T-1)
        h_l = EncoderBlock_l(h_{l-1}, padding_mask = x != pad),  l = 1..N   (pre-norm)
        sequence_output = Norm(h_N);  pooled_output = sequence_output[:, 0] or masked mean

    Every token attends to every non-padding token (no causal mask). The padding mask is
    derived from the token ids: id 0 (`pad_id` of every keras_lm tokenizer) is padding.

    `segment_ids` here are BERT's token types (0 for the first text, 1 for the second of a
    pair), not `DecoderLM`'s document-packing ids.

    Shape letters: B batch, T tokens, D `hidden_dim`, V vocabulary.

    Inputs: int token ids [B, T], or a dict with `token_ids` [B, T] and optionally
    `segment_ids` [B, T] (zeros when absent).

    Args:
        vocabulary_size: int, V (for keras_lm encoders: tokenizer vocabulary + 1 mask id,
            see `keras_lm.data.encoder_inputs`).
        num_layers: int, N.
        num_heads: int, attention heads per block.
        hidden_dim: int, D (divisible by `num_heads`).
        sequence_length: int, longest input (size of the learned position table).
        intermediate_dim: int or None, feed-forward width (None: 4 D).
        num_segments: int, rows of the segment embedding (2: single texts and pairs).
        position_encoding: "learned" (BERT) or "sinusoidal".
        dropout: float, on embeddings, attention and residual branches.
        pooling: "first" (the [CLS] vector) or "mean" (mean over non-padding tokens).
        activation: "gelu", "relu" or "swiglu".
        norm: "layer_norm" or "rms_norm".
        layer_norm_epsilon: float.
        **kwargs: `keras.Model` arguments (name, dtype).

    Returns (call):
        A dict: `sequence_output` [B, T, D] and `pooled_output` [B, D].

    Example:
    >>> backbone = EncoderBackbone(vocabulary_size=100, num_layers=2, num_heads=2,
    ...                            hidden_dim=32, sequence_length=16)
    >>> outputs = backbone({"token_ids": keras.ops.ones((2, 8), "int32"),
    ...                     "segment_ids": keras.ops.zeros((2, 8), "int32")})
    >>> outputs["sequence_output"].shape, outputs["pooled_output"].shape
    (TensorShape([2, 8, 32]), TensorShape([2, 32]))

    References:
        Devlin et al., 2019 (BERT), https://arxiv.org/abs/1810.04805
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        sequence_length,
        intermediate_dim=None,
        num_segments=2,
        position_encoding="learned",
        dropout=0.0,
        pooling="first",
        activation="gelu",
        norm="layer_norm",
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"`position_encoding` must be one of {POSITION_ENCODINGS}. "
                f"Received: position_encoding={position_encoding!r}"
            )
        if pooling not in POOLINGS:
            raise ValueError(
                f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}"
            )
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("hidden_dim", hidden_dim),
            ("sequence_length", sequence_length),
            ("num_segments", num_segments),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads}). "
                f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.sequence_length = sequence_length
        self.intermediate_dim = intermediate_dim or 4 * hidden_dim
        self.num_segments = num_segments
        self.position_encoding = position_encoding
        self.dropout = dropout
        self.pooling = pooling
        self.activation = activation
        self.norm = norm
        self.layer_norm_epsilon = layer_norm_epsilon

        policy = self.dtype_policy
        # BERT's initializer: N(0, 0.02) for every embedding and kernel.
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.embeddings = TokenAndPositionEmbedding(
            vocabulary_size,
            sequence_length,
            hidden_dim,
            position_encoding=position_encoding,
            tie_weights=True,
            embeddings_initializer=init,
            dtype=policy,
            name="embeddings",
        )
        self.segment_embedding = keras.layers.Embedding(
            num_segments,
            hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=policy,
            name="segment_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.blocks = [
            TransformerEncoderBlock(
                num_heads,
                self.intermediate_dim,
                dropout=dropout,
                activation=activation,
                norm=norm,
                norm_first=True,  # pre-norm: stable without BERT's long warmup
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
                dtype=policy,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = normalization(norm, layer_norm_epsilon, policy, "final_norm")

    @property
    def token_embedding(self):
        """The `ReversibleEmbedding` [V, D], shared with a masked-LM output layer."""
        return self.embeddings.token_embedding

    def build(self, input_shape=None):
        self.embeddings.build((None, None))
        self.segment_embedding.build((None, None))
        for layer in self.blocks + [self.final_norm]:
            layer.build((None, None, self.hidden_dim))
        self.built = True

    def call(self, inputs, training=None):
        token_ids, segment_ids = unpack_encoder_inputs(inputs)
        padding_mask = ops.not_equal(token_ids, 0)  # (B, T), True for real tokens
        x = self.embeddings(token_ids)  # (B, T, D)
        x = x + self.segment_embedding(segment_ids)  # (B, T, D)
        x = self.embedding_dropout(x, training=training)
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        x = self.final_norm(x)  # (B, T, D)
        return {"sequence_output": x, "pooled_output": self.pool(x, padding_mask)}

    def pool(self, sequence_output, padding_mask):
        """[B, T, D] and bool [B, T] -> [B, D] by `self.pooling`."""
        if self.pooling == "first":
            return sequence_output[:, 0, :]
        weights = ops.cast(padding_mask, sequence_output.dtype)[:, :, None]  # (B, T, 1)
        total = ops.sum(sequence_output * weights, axis=1)  # (B, D)
        return total / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "sequence_length": self.sequence_length,
                "intermediate_dim": self.intermediate_dim,
                "num_segments": self.num_segments,
                "position_encoding": self.position_encoding,
                "dropout": self.dropout,
                "pooling": self.pooling,
                "activation": self.activation,
                "norm": self.norm,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def unpack_encoder_inputs(inputs):
    """int [B, T] or {"token_ids", "segment_ids"?} -> (token_ids, segment_ids) int32 [B, T]."""
    if isinstance(inputs, dict):
        if "token_ids" not in inputs:
            raise ValueError(
                "A dict input needs a `token_ids` entry (and optionally `segment_ids`). "
                f"Received keys: {sorted(inputs)}"
            )
        token_ids = ops.cast(inputs["token_ids"], "int32")
        segment_ids = inputs.get("segment_ids")
    else:
        token_ids, segment_ids = ops.cast(inputs, "int32"), None
    if segment_ids is None:
        segment_ids = ops.zeros_like(token_ids)
    return token_ids, ops.cast(segment_ids, "int32")
