"""GPT-style decoder-only language model."""

import keras
from keras import ops

from keras_lm.layers import TokenAndPositionEmbedding
from keras_lm.layers import TransformerDecoderBlock
from keras_lm.layers import normalization
from keras_lm.layers import positions_from_segment_ids
from keras_lm.layers import segment_mask
from keras_lm.models.generative_lm import GenerativeLM
from keras_lm.models.generative_lm import unpack_lm_inputs

POSITION_ENCODINGS = ("learned", "sinusoidal", "rotary")


@keras.saving.register_keras_serializable(package="keras_lm")
class DecoderLM(GenerativeLM, keras.Model):
    """A GPT-style language model: embeddings, N causal decoder blocks, a final norm, logits.

        h_0 = TokenEmbedding(x) + PositionEncoding(positions)     (no addition for rotary)
        h_l = DecoderBlock_l(h_{l-1}),  l = 1..N                  (pre-norm, GPT-2 style)
        logits = Norm(h_N) E^T                                    (tied) or Norm(h_N) W_out

    Shape letters: B batch, T tokens, V vocabulary, D `hidden_dim`, L `num_layers`,
    K key/value heads, Dh = D // num_heads, S cache length.

    Inputs: int token ids [B, T], or a dict with `token_ids` [B, T] and optionally
    `segment_ids` [B, T] for document-packed windows (1, 2, ... per document, 0 for
    padding): then attention never crosses a document boundary and positions restart at
    each document, so each document gets exactly the logits it would get alone.

    Cache layout for decoding (`call_with_cache`): a tuple of L tensors, each
    [B, 2, K, S, Dh] (keys and values of one block; see `MultiHeadAttention`).

    Args:
        vocabulary_size: int, V; must equal the tokenizer's `vocabulary_size`.
        num_layers: int, L.
        num_heads: int, query heads per block.
        hidden_dim: int, D (divisible by `num_heads`).
        intermediate_dim: int, feed-forward width (default 4 D).
        sequence_length: int, the context length (longest sequence the model sees).
        num_key_value_heads: int or None, grouped-query attention (None: = num_heads).
        activation: "gelu", "relu" or "swiglu".
        position_encoding: "learned", "sinusoidal" or "rotary".
        norm: "layer_norm" or "rms_norm".
        dropout: float.
        tie_embeddings: bool, output projection = transposed token embedding.
        layer_norm_epsilon: float.
        **kwargs: `keras.Model` arguments (name, dtype).

    Returns (call):
        float32 logits [B, T, V].

    Example:
    >>> model = DecoderLM(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32,
    ...                   sequence_length=16)
    >>> model(keras.ops.ones((2, 8), "int32")).shape
    TensorShape([2, 8, 100])

    References:
        Radford et al., 2019 (GPT-2); Vaswani et al., 2017, https://arxiv.org/abs/1706.03762
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        sequence_length,
        intermediate_dim=None,
        num_key_value_heads=None,
        activation="gelu",
        position_encoding="learned",
        norm="layer_norm",
        dropout=0.0,
        tie_embeddings=True,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"`position_encoding` must be one of {POSITION_ENCODINGS}. "
                f"Received: position_encoding={position_encoding!r}"
            )
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("hidden_dim", hidden_dim),
            ("sequence_length", sequence_length),
        ]:
            if not isinstance(value, int) or value < 1:
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
        self.num_key_value_heads = num_key_value_heads or num_heads
        self.activation = activation
        self.position_encoding = position_encoding
        self.norm = norm
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.layer_norm_epsilon = layer_norm_epsilon
        self.head_dim = hidden_dim // num_heads

        policy = self.dtype_policy
        rotary = position_encoding == "rotary"
        self.embeddings = TokenAndPositionEmbedding(
            vocabulary_size,
            sequence_length,
            hidden_dim,
            position_encoding="none" if rotary else position_encoding,
            tie_weights=tie_embeddings,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02),
            dtype=policy,
            name="embeddings",
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.blocks = [
            TransformerDecoderBlock(
                num_heads,
                self.intermediate_dim,
                dropout=dropout,
                activation=activation,
                norm=norm,
                norm_first=True,
                num_key_value_heads=num_key_value_heads,
                rotary_max_wavelength=10000.0 if rotary else None,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
                dtype=policy,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = normalization(norm, layer_norm_epsilon, policy, "final_norm")

    def build(self, input_shape=None):
        # Sublayers may already be built when decoding ran before the first full call.
        for layer, shape in [(self.embeddings, (None, None))] + [
            (layer, (None, None, self.hidden_dim)) for layer in self.blocks + [self.final_norm]
        ]:
            if not layer.built:
                layer.build(shape)
        self.built = True

    # ----------------------------------------------------------------------------- training
    def call(self, inputs, training=None):
        token_ids, segment_ids = unpack_lm_inputs(inputs)
        positions, attention_mask = None, None
        if segment_ids is not None:
            positions = positions_from_segment_ids(segment_ids)  # (B, T)
            attention_mask = segment_mask(segment_ids)  # (B, T, T)
        x = self.embeddings(token_ids, positions=positions)  # (B, T, D)
        x = self.embedding_dropout(x, training=training)
        for block in self.blocks:
            x = block(x, decoder_attention_mask=attention_mask, positions=positions,
                      training=training)
        return self.logits(x)

    def logits(self, hidden):
        """Final norm and output projection: [B, T, D] -> float32 logits [B, T, V]."""
        return self.embeddings.token_embedding(self.final_norm(hidden), reverse=True)

    # ----------------------------------------------------------------------------- decoding
    def init_cache(self, batch_size, cache_length):
        """Zeros for `call_with_cache`: L tensors [B, 2, K, S, Dh] in the compute dtype."""
        shape = (batch_size, 2, self.num_key_value_heads, cache_length, self.head_dim)
        return tuple(ops.zeros(shape, dtype=self.compute_dtype) for _ in self.blocks)

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """Runs T new tokens at positions `cache_update_index ...` against the cache.

        Args:
            token_ids: int [B, T], the new tokens.
            cache: tuple of L tensors [B, 2, K, S, Dh] from `init_cache` or a previous call.
            cache_update_index: int scalar, position of the first new token.

        Returns:
            (logits [B, T, V] float32, new cache).
        """
        x = self.embeddings(token_ids, start_index=cache_update_index)
        new_cache = []
        for block, layer_cache in zip(self.blocks, cache):
            x, layer_cache = block(
                x,
                self_attention_cache=layer_cache,
                self_attention_cache_update_index=cache_update_index,
            )
            new_cache.append(layer_cache)
        return self.logits(x), tuple(new_cache)


    def count_params_without_embeddings(self):
        """Parameters outside the token embedding (the figure GPT papers report)."""
        return self.count_params() - self.vocabulary_size * self.hidden_dim

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
                "num_key_value_heads": self.num_key_value_heads,
                "activation": self.activation,
                "position_encoding": self.position_encoding,
                "norm": self.norm,
                "dropout": self.dropout,
                "tie_embeddings": self.tie_embeddings,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
