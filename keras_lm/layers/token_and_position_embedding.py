"""Token embedding plus a position encoding."""

import keras

from keras_lm.layers.initializers import clone_initializer
from keras_lm.layers.position_embedding import PositionEmbedding
from keras_lm.layers.reversible_embedding import ReversibleEmbedding
from keras_lm.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding

POSITION_ENCODINGS = ("learned", "sinusoidal", "none")


@keras.saving.register_keras_serializable(package="keras_lm")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Sum of a (reversible) token embedding and an absolute position encoding.

    Use `position_encoding="none"` when positions enter elsewhere (rotary attention).
    The token embedding is exposed as `self.token_embedding` so a language model head
    can reuse it (`token_embedding(hidden, reverse=True)`).

    Shape letters: B batch, T sequence, V vocabulary, D embedding size.

    Args:
        vocabulary_size: int, V.
        sequence_length: int, longest sequence (size of a learned table).
        embedding_dim: int, D.
        position_encoding: "learned", "sinusoidal" or "none".
        tie_weights: bool, whether the token embedding's reverse projection is tied.
        embeddings_initializer: initializer of the token and learned position tables.
        **kwargs: base layer arguments.

    Call arguments:
        token_ids: int [B, T].
        start_index: int or scalar tensor, position of the first token.
        positions: optional int [B, T]; explicit positions (packed documents).

    Returns:
        [B, T, D].

    Example:
    >>> layer = TokenAndPositionEmbedding(100, 16, 8)
    >>> layer(keras.ops.ones((2, 5), "int32")).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        vocabulary_size,
        sequence_length,
        embedding_dim,
        position_encoding="learned",
        tie_weights=True,
        embeddings_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"`position_encoding` must be one of {POSITION_ENCODINGS}. "
                f"Received: position_encoding={position_encoding!r}"
            )
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.position_encoding = position_encoding
        self.tie_weights = tie_weights
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size,
            embedding_dim,
            tie_weights=tie_weights,
            embeddings_initializer=clone_initializer(self.embeddings_initializer),
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.position_layer = None
        if position_encoding == "learned":
            self.position_layer = PositionEmbedding(
                sequence_length,
                initializer=clone_initializer(self.embeddings_initializer),
                dtype=self.dtype_policy,
                name="position_embedding",
            )
        elif position_encoding == "sinusoidal":
            self.position_layer = SinusoidalPositionEncoding(
                dtype=self.dtype_policy, name="position_encoding"
            )

    def build(self, token_ids_shape):
        self.token_embedding.build(token_ids_shape)
        if self.position_layer is not None:
            self.position_layer.build(tuple(token_ids_shape) + (self.embedding_dim,))
        self.built = True

    def call(self, token_ids, start_index=0, positions=None):
        embeddings = self.token_embedding(token_ids)  # (B, T, D)
        if self.position_layer is not None:
            embeddings = embeddings + self.position_layer(
                embeddings, start_index=start_index, positions=positions
            )
        return embeddings

    def compute_output_shape(self, token_ids_shape):
        return tuple(token_ids_shape) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "position_encoding": self.position_encoding,
                "tie_weights": self.tie_weights,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
