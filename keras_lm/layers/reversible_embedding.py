"""Token embedding whose transpose doubles as the output projection."""

import keras
from keras import ops

from keras_lm.layers.initializers import clone_initializer


@keras.saving.register_keras_serializable(package="keras_lm")
class ReversibleEmbedding(keras.layers.Layer):
    """A token embedding that can also map hidden states back to vocabulary logits.

    `call(ids)` embeds; `call(hidden, reverse=True)` returns `hidden @ E^T`, the tied
    output layer of Press & Wolf (2017). With `tie_weights=False` the reverse direction
    uses its own kernel [D, V] instead. Logits are returned in float32 (from
    `logit_dtype`), so the loss and softmax stay stable under mixed precision.

    Shape letters: B batch, T sequence, V vocabulary, D embedding size.

    Args:
        input_dim: int, V.
        output_dim: int, D.
        tie_weights: bool, share the embedding matrix with the output projection.
        embeddings_initializer: initializer of the table (and of the untied kernel).
        logit_dtype: dtype of the reverse output.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: int [B, T] ids, or [B, T, D] hidden states with `reverse=True`.
        reverse: bool.

    Returns:
        [B, T, D] embeddings, or [B, T, V] logits with `reverse=True`.

    Example:
    >>> emb = ReversibleEmbedding(100, 16)
    >>> emb(emb(keras.ops.ones((2, 3), "int32")), reverse=True).shape
    TensorShape([2, 3, 100])

    Reference: Press & Wolf, 2017, https://arxiv.org/abs/1608.05859
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        tie_weights=True,
        embeddings_initializer="uniform",
        logit_dtype="float32",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.tie_weights = tie_weights
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.logit_dtype = logit_dtype

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
        )
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight(
                name="reverse_embeddings",
                shape=(self.output_dim, self.input_dim),
                initializer=clone_initializer(self.embeddings_initializer),
            )

    def call(self, inputs, reverse=False):
        if not reverse:
            ids = ops.cast(inputs, "int32")
            return ops.take(ops.cast(self.embeddings, self.compute_dtype), ids, axis=0)
        if self.tie_weights:
            kernel = ops.transpose(ops.convert_to_tensor(self.embeddings))  # (D, V)
        else:
            kernel = self.reverse_embeddings
        logits = ops.matmul(inputs, ops.cast(kernel, inputs.dtype))  # (B, T, V)
        return ops.cast(logits, self.logit_dtype)

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return tuple(input_shape[:-1]) + (self.input_dim,)
        return tuple(input_shape) + (self.output_dim,)

    def compute_output_spec(self, inputs, reverse=False):
        shape = self.compute_output_shape(inputs.shape, reverse=reverse)
        dtype = self.logit_dtype if reverse else self.compute_dtype
        return keras.KerasTensor(shape, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "tie_weights": self.tie_weights,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "logit_dtype": self.logit_dtype,
            }
        )
        return config
