"""Learned absolute position embedding."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_lm")
class PositionEmbedding(keras.layers.Layer):
    """A learned position table [L, D] (as in GPT-2 and BERT).

    Shape letters: B batch, T sequence (T + start_index <= L), D features.

    Args:
        sequence_length: int, L, the longest sequence the table covers.
        initializer: initializer of the table.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, T, D]; only its shape is used.
        start_index: int or scalar tensor, position of the first token (cached decoding).
        positions: optional int [B, T] or [T]; explicit positions (packed documents).

    Returns:
        [1, T, D] (or [B, T, D] with batched `positions`) in the compute dtype.

    Example:
    >>> PositionEmbedding(sequence_length=16)(keras.ops.zeros((2, 4, 8))).shape
    TensorShape([1, 4, 8])
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if sequence_length is None or sequence_length < 1:
            raise ValueError(
                "`sequence_length` must be a positive int (the size of the learned table). "
                f"Received: sequence_length={sequence_length}"
            )
        self.sequence_length = int(sequence_length)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
        )
        self.built = True

    def call(self, inputs, start_index=0, positions=None):
        if len(inputs.shape) != 3:
            raise ValueError(
                "PositionEmbedding expects inputs of rank 3 [batch, sequence, features]. "
                f"Received: inputs.shape={tuple(inputs.shape)}"
            )
        length = inputs.shape[1]
        end = None
        if isinstance(start_index, int) and length is not None:
            end = start_index + length
        if end is not None and end > self.sequence_length:
            raise ValueError(
                f"A sequence ending at position {end} is longer than the learned position "
                f"table (sequence_length={self.sequence_length}). Use sequences of at most "
                f"{self.sequence_length} tokens (truncate the input) or build the layer with a "
                f"larger sequence_length. Received: inputs.shape={tuple(inputs.shape)}, "
                f"start_index={start_index}"
            )
        table = ops.cast(self.position_embeddings, self.compute_dtype)
        if positions is not None:
            embeddings = ops.take(table, ops.cast(positions, "int32"), axis=0)
            return embeddings[None] if len(positions.shape) == 1 else embeddings
        length = ops.shape(inputs)[1]
        if isinstance(start_index, int):
            embeddings = ops.slice(table, (start_index, 0), (length, ops.shape(table)[1]))
        else:
            # A gather, not a slice: under XLA a slice's start is a compile-time constant
            # where it can be, so a start computed from a function's input (a prompt
            # length) would compile a new program for every value.
            indices = ops.arange(length, dtype="int32") + ops.cast(start_index, "int32")
            embeddings = ops.take(table, indices, axis=0)
        return embeddings[None]  # (1, T, D)

    def compute_output_shape(self, input_shape):
        return (None,) + tuple(input_shape[1:])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
