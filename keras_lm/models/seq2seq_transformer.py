"""Encoder-decoder Transformer (Vaswani et al., 2017) for sequence-to-sequence tasks."""

import keras
from keras import ops

from keras_lm.layers import PositionEmbedding
from keras_lm.layers import ReversibleEmbedding
from keras_lm.layers import SinusoidalPositionEncoding
from keras_lm.layers import TransformerDecoderBlock
from keras_lm.layers import TransformerEncoderBlock
from keras_lm.layers import normalization

POSITION_ENCODINGS = ("learned", "sinusoidal")
ENCODER_TOKEN_IDS = "encoder_token_ids"
DECODER_TOKEN_IDS = "decoder_token_ids"
ENCODER_PADDING_MASK = "encoder_padding_mask"


@keras.saving.register_keras_serializable(package="keras_lm")
class Seq2SeqTransformer(keras.Model):
    """An encoder-decoder Transformer: source ids in, target-vocabulary logits out.

        e_0 = E_src(x) + P_enc(positions);  e_l = EncoderBlock_l(e_{l-1});  e = Norm(e_L)
        d_0 = E_tgt(y) + P_dec(positions);  d_l = DecoderBlock_l(d_{l-1}, e)  (causal
              self-attention, cross-attention over e);  logits = Norm(d_L) E_tgt^T or W_out

    Pre-norm blocks, GPT-2 initialisation (normal, stddev 0.02).

    Shared or separate vocabularies: with `target_vocabulary_size=None` source and target
    share one vocabulary and one token embedding, which is also the output projection when
    `tie_embeddings` (three-way tying, Press & Wolf, 2017). With a separate target vocabulary
    the source gets its own embedding and `tie_embeddings` ties only the target side.

    Shape letters: B batch, S source length, T target length, V target vocabulary,
    D `hidden_dim`, L decoder layers, K = `num_heads` key/value heads, Dh = D // num_heads,
    T_max cache length.

    Inputs (`call`): a dict with
        `encoder_token_ids`: int [B, S], source ids; id 0 is padding.
        `decoder_token_ids`: int [B, T], the target shifted right (bos first; teacher forcing).
        `encoder_padding_mask` (optional): bool [B, S], True on real source tokens; by default
            `encoder_token_ids != 0`.
    Decoder padding needs no mask: the self-attention is causal, so padding after a target
    never reaches its real positions, and the loss weights leave its labels out.

    Decoding (`decoding_state`, `init_cache`, `call_with_cache`): the encoder runs once, and
    so do the cross-attention key/value projections of its output (`decoding_state`: L tensors
    [B, 2, K, S, Dh]), which would otherwise be recomputed at every step and cost more than
    the rest of a step. The self-attention cache is a tuple of L tensors [B, 2, K, T_max, Dh],
    the keys and values of each decoder block.

    Args:
        vocabulary_size: int, source vocabulary (and target, unless `target_vocabulary_size`).
        num_layers: int, encoder layers.
        num_heads: int, attention heads.
        hidden_dim: int, D (divisible by `num_heads`).
        sequence_length: int, the longest source S.
        target_vocabulary_size: int or None (None: shared with the source).
        target_sequence_length: int or None, the longest decoder input T (None: =
            `sequence_length`).
        num_decoder_layers: int or None, L (None: = `num_layers`).
        intermediate_dim: int or None, feed-forward width (None: 4 D).
        activation: "gelu", "relu" or "swiglu".
        position_encoding: "learned" or "sinusoidal" (rotary is not offered: the encoder
            block has no rotary attention).
        norm: "layer_norm" or "rms_norm".
        dropout: float.
        tie_embeddings: bool, output projection = transposed target embedding.
        layer_norm_epsilon: float.
        **kwargs: `keras.Model` arguments (name, dtype).

    Returns (call):
        float32 logits [B, T, V].

    Example:
    >>> model = Seq2SeqTransformer(vocabulary_size=20, num_layers=1, num_heads=2,
    ...                            hidden_dim=16, sequence_length=8)
    >>> ids = keras.ops.ones((2, 5), "int32")
    >>> model({"encoder_token_ids": ids, "decoder_token_ids": ids}).shape
    TensorShape([2, 5, 20])

    References:
        Vaswani et al., 2017, https://arxiv.org/abs/1706.03762
        Press & Wolf, 2017, https://arxiv.org/abs/1608.05859
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        sequence_length,
        target_vocabulary_size=None,
        target_sequence_length=None,
        num_decoder_layers=None,
        intermediate_dim=None,
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
        target_vocabulary_size = target_vocabulary_size or None
        for name, value in [
            ("vocabulary_size", vocabulary_size),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("hidden_dim", hidden_dim),
            ("sequence_length", sequence_length),
            ("target_vocabulary_size", target_vocabulary_size or 1),
            ("target_sequence_length", target_sequence_length or 1),
            ("num_decoder_layers", num_decoder_layers or 1),
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
        self.target_vocabulary_size = target_vocabulary_size
        self.target_sequence_length = target_sequence_length or sequence_length
        self.num_decoder_layers = num_decoder_layers or num_layers
        self.intermediate_dim = intermediate_dim or 4 * hidden_dim
        self.activation = activation
        self.position_encoding = position_encoding
        self.norm = norm
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.layer_norm_epsilon = layer_norm_epsilon
        self.head_dim = hidden_dim // num_heads
        self.shared_vocabulary = target_vocabulary_size is None

        policy = self.dtype_policy

        def initializer():  # a fresh instance each: shared unseeded initializers repeat values
            return keras.initializers.RandomNormal(stddev=0.02)

        def embedding(size, tie, name):
            return ReversibleEmbedding(size, hidden_dim, tie_weights=tie,
                                       embeddings_initializer=initializer(), dtype=policy,
                                       name=name)

        def positions(length, name):
            if position_encoding == "learned":
                return PositionEmbedding(length, initializer=initializer(), dtype=policy,
                                         name=name)
            return SinusoidalPositionEncoding(dtype=policy, name=name)

        # The target embedding embeds decoder inputs and (tied) projects to logits; with a
        # shared vocabulary it embeds the source too, and no source embedding exists.
        self.target_embedding = embedding(self.output_vocabulary_size, tie_embeddings,
                                          "token_embedding")
        self.source_embedding = (
            None if self.shared_vocabulary
            else embedding(vocabulary_size, True, "source_token_embedding")
        )
        self.encoder_positions = positions(sequence_length, "encoder_positions")
        self.decoder_positions = positions(self.target_sequence_length, "decoder_positions")
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=policy)
        block_options = dict(dropout=dropout, activation=activation, norm=norm, norm_first=True,
                             layer_norm_epsilon=layer_norm_epsilon, dtype=policy)
        self.encoder_blocks = [
            TransformerEncoderBlock(num_heads, self.intermediate_dim,
                                    kernel_initializer=initializer(), name=f"encoder_block_{i}",
                                    **block_options)
            for i in range(num_layers)
        ]
        self.decoder_blocks = [
            TransformerDecoderBlock(num_heads, self.intermediate_dim, use_cross_attention=True,
                                    kernel_initializer=initializer(), name=f"decoder_block_{i}",
                                    **block_options)
            for i in range(self.num_decoder_layers)
        ]
        self.encoder_norm = normalization(norm, layer_norm_epsilon, policy, "encoder_norm")
        self.decoder_norm = normalization(norm, layer_norm_epsilon, policy, "decoder_norm")

    @property
    def output_vocabulary_size(self):
        """V, the target vocabulary (the logits' last axis)."""
        return self.target_vocabulary_size or self.vocabulary_size

    def build(self, input_shape=None):
        # Sublayers may already be built when decoding ran before the first full call.
        hidden = (None, None, self.hidden_dim)
        layers = [(self.target_embedding, (None, None)),
                  (self.encoder_positions, hidden), (self.decoder_positions, hidden),
                  (self.encoder_norm, hidden), (self.decoder_norm, hidden)]
        if self.source_embedding is not None:
            layers.append((self.source_embedding, (None, None)))
        layers += [(block, hidden) for block in self.encoder_blocks]
        for layer, shape in layers:
            if not layer.built:
                layer.build(shape)
        for block in self.decoder_blocks:
            if not block.built:
                block.build(hidden, hidden)
        self.built = True

    # ----------------------------------------------------------------------------- training
    def call(self, inputs, training=None):
        if not isinstance(inputs, dict) or not {ENCODER_TOKEN_IDS, DECODER_TOKEN_IDS} <= set(
            inputs
        ):
            received = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                f"Seq2SeqTransformer takes a dict with '{ENCODER_TOKEN_IDS}' [B, S] and "
                f"'{DECODER_TOKEN_IDS}' [B, T] (and optionally '{ENCODER_PADDING_MASK}'). "
                f"Received: {received}"
            )
        encoder_outputs, encoder_mask = self.encode(
            inputs[ENCODER_TOKEN_IDS], inputs.get(ENCODER_PADDING_MASK), training=training
        )
        return self.decode(inputs[DECODER_TOKEN_IDS], encoder_outputs, encoder_mask,
                           training=training)

    def encode(self, encoder_token_ids, encoder_padding_mask=None, training=None):
        """Runs the encoder once.

        Args:
            encoder_token_ids: int [B, S].
            encoder_padding_mask: bool [B, S] or None (then `encoder_token_ids != 0`).
            training: bool.

        Returns:
            (encoder outputs [B, S, D], encoder padding mask bool [B, S]).
        """
        if encoder_padding_mask is None:
            encoder_padding_mask = ops.not_equal(encoder_token_ids, 0)
        encoder_padding_mask = ops.cast(encoder_padding_mask, "bool")
        embedding = self.target_embedding if self.shared_vocabulary else self.source_embedding
        x = embedding(encoder_token_ids)  # (B, S, D)
        x = x + self.encoder_positions(x)
        x = self.embedding_dropout(x, training=training)
        for block in self.encoder_blocks:
            x = block(x, padding_mask=encoder_padding_mask, training=training)
        return self.encoder_norm(x), encoder_padding_mask

    def decode(self, decoder_token_ids, encoder_outputs, encoder_padding_mask,
               *cross_attention_caches, training=None):
        """Teacher-forced decoder over a whole target prefix: float32 logits [B, T, V].

        Args:
            decoder_token_ids: int [B, T].
            encoder_outputs: [B, S, D] from `encode`.
            encoder_padding_mask: bool [B, S] from `encode`.
            *cross_attention_caches: ignored (accepted so that `decode(ids, *decoding_state)`
                works); the blocks project `encoder_outputs` once per call anyway.
            training: bool.
        """
        x = self.target_embedding(decoder_token_ids)  # (B, T, D)
        x = x + self.decoder_positions(x)
        x = self.embedding_dropout(x, training=training)
        for block in self.decoder_blocks:
            x = block(x, encoder_outputs, encoder_padding_mask=encoder_padding_mask,
                      training=training)
        return self.logits(x)

    def logits(self, hidden):
        """Final norm and output projection: [B, T, D] -> float32 logits [B, T, V]."""
        return self.target_embedding(self.decoder_norm(hidden), reverse=True)

    # ----------------------------------------------------------------------------- decoding
    def init_cache(self, batch_size, cache_length):
        """Zeros for `call_with_cache`: L tensors [B, 2, K, T_max, Dh] in the compute dtype."""
        shape = (batch_size, 2, self.num_heads, cache_length, self.head_dim)
        return tuple(ops.zeros(shape, dtype=self.compute_dtype) for _ in self.decoder_blocks)

    def decoding_state(self, encoder_token_ids, encoder_padding_mask=None):
        """What decoding needs from the source, computed once per source.

        Args:
            encoder_token_ids: int [B, S].
            encoder_padding_mask: bool [B, S] or None (then `encoder_token_ids != 0`).

        Returns:
            A flat tuple: encoder outputs [B, S, D], encoder padding mask [B, S], then for
            each decoder block its cross-attention keys and values [B, 2, K, S, Dh].
        """
        encoder_outputs, mask = self.encode(encoder_token_ids, encoder_padding_mask)
        cross_caches = []
        for block in self.decoder_blocks:
            attention = block.cross_attention
            keys = attention.key_dense(encoder_outputs)  # (B, S, K, Dh)
            values = attention.value_dense(encoder_outputs)  # (B, S, K, Dh)
            cross_cache = ops.stack([keys, values], axis=1)  # (B, 2, S, K, Dh)
            cross_caches.append(ops.transpose(cross_cache, (0, 1, 3, 2, 4)))  # (B, 2, K, S, Dh)
        return (encoder_outputs, mask) + tuple(cross_caches)

    def call_with_cache(self, decoder_token_ids, cache, cache_update_index, encoder_outputs,
                        encoder_padding_mask, *cross_attention_caches):
        """Runs new target tokens at positions `cache_update_index ...` against the cache.

        Args:
            decoder_token_ids: int [B, T_new].
            cache: tuple of L tensors [B, 2, K, T_max, Dh].
            cache_update_index: int scalar, position of the first new token.
            encoder_outputs: [B, S, D] from `encode`.
            encoder_padding_mask: bool [B, S] from `encode`.
            *cross_attention_caches: optional, the L key/value tensors [B, 2, K, S, Dh] of
                `decoding_state`; without them each block projects `encoder_outputs` again.

        Returns:
            (float32 logits [B, T_new, V], new cache).
        """
        x = self.target_embedding(decoder_token_ids)  # (B, T_new, D)
        x = x + self.decoder_positions(x, start_index=cache_update_index)
        new_cache = []
        for index, (block, layer_cache) in enumerate(zip(self.decoder_blocks, cache)):
            if cross_attention_caches:
                x, layer_cache = _decoder_block_step(
                    block, x, layer_cache, cache_update_index, cross_attention_caches[index],
                    encoder_padding_mask)
            else:
                x, layer_cache = block(
                    x,
                    encoder_outputs,
                    encoder_padding_mask=encoder_padding_mask,
                    self_attention_cache=layer_cache,
                    self_attention_cache_update_index=cache_update_index,
                )
            new_cache.append(layer_cache)
        return self.logits(x), tuple(new_cache)

    def generate(self, inputs, tokenizer=None, max_length=None, **kwargs):
        """Decodes sources; see `keras_lm.models.seq2seq_decoding.generate` for every option.

        Args:
            inputs: a str or list of str (needs `tokenizer`), or lists of source token ids.
            tokenizer: the source tokenizer (also the target one unless `target_tokenizer`).
            max_length: int, most target tokens (default: `target_sequence_length`).
            **kwargs: `target_tokenizer`, `beam_size`, `length_penalty`, `temperature`,
                `top_k`, `top_p`, `seed`, `use_cache`, `return_scores`.

        Returns:
            The outputs: str (with a tokenizer) or lists of ids.
        """
        from keras_lm.models.seq2seq_decoding import generate

        return generate(self, inputs, tokenizer=tokenizer, max_length=max_length, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "sequence_length": self.sequence_length,
                "target_vocabulary_size": self.target_vocabulary_size,
                "target_sequence_length": self.target_sequence_length,
                "num_decoder_layers": self.num_decoder_layers,
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "position_encoding": self.position_encoding,
                "norm": self.norm,
                "dropout": self.dropout,
                "tie_embeddings": self.tie_embeddings,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def _decoder_block_step(block, x, self_cache, index, cross_cache, encoder_padding_mask):
    """`TransformerDecoderBlock.call` (pre-norm, inference) with precomputed cross-attention
    keys and values.

    The block's own call projects the encoder output at every decoding step; here the
    cross-attention reads keys/values from `cross_cache` [B, 2, K, S, Dh] instead (passed as
    its cache, with an empty key/value input: nothing new is written). Tests check that this
    equals the block's call.
    """
    residual = x
    h = block.self_attention_norm(x)
    h, self_cache = block.self_attention(
        h, h, use_causal_mask=True, cache=self_cache, cache_update_index=index)
    x = residual + h
    residual = x
    h = block.cross_attention_norm(x)
    h, _ = block.cross_attention(
        h, h[:, :0], attention_mask=encoder_padding_mask, cache=cross_cache,
        cache_update_index=0)  # (B, T_new, D); h[:, :0] is an empty [B, 0, D] key/value
    x = residual + h
    return x + block.feed_forward(block.feed_forward_norm(x)), self_cache
