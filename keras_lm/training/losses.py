"""Token-level cross-entropy that ignores padding: sum(w * ce) / sum(w).

Shapes: B batch, T tokens, V vocabulary.

Keras's built-in reductions divide by the padded element count (`"sum_over_batch_size"`) or,
with `"mean_with_sample_weight"` (Keras >= 3.11), by each replica's own weight sum, so under
`tf.distribute` the objective becomes the mean of per-replica token means and depends on how
padding falls across replicas. `MaskedSparseCrossEntropy` divides by the global number of real
tokens instead, so one, two or eight replicas optimise the same objective.
"""

import keras
import tensorflow as tf
from keras import ops


def cross_entropy_sums(y_true, logits, sample_weight=None):
    """Weighted sum of token cross-entropies and the sum of weights, in float32.

    Positions with weight 0 contribute nothing, whatever their label (a padding label of -1 or
    one outside the vocabulary is fine there).

    Args:
        y_true: int tensor (B, T) (or (B, T, 1)), target token ids.
        logits: float tensor (B, T, V), unnormalised scores, any float dtype; computed in
            float32 so bfloat16 logits do not lose the loss's precision.
        sample_weight: optional float tensor (B, T) (or (B,) per sequence); 0 marks padding.
            None weighs every token 1.

    Returns:
        `(weighted_sum, weight_sum)`: two float32 scalars.

    Example:

    >>> total, count = cross_entropy_sums([[1, 0]], ops.zeros((1, 2, 4)), [[1.0, 0.0]])
    >>> float(total), float(count)  # one real token, uniform over 4: log(4)
    (1.3862943649291992, 1.0)
    """
    logits = ops.cast(logits, "float32")
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(logits.shape):
        y_true = ops.squeeze(y_true, axis=-1)  # (B, T, 1) -> (B, T)
    y_true = ops.cast(y_true, "int32")
    if sample_weight is None:
        weights = ops.ones(ops.shape(y_true), dtype="float32")
    else:
        weights = ops.cast(sample_weight, "float32")
        if len(weights.shape) == len(y_true.shape) + 1:
            weights = ops.squeeze(weights, axis=-1)  # (B, T, 1) -> (B, T)
        while len(weights.shape) < len(y_true.shape):
            weights = ops.expand_dims(weights, axis=-1)  # per-sequence weights (B,) -> (B, 1)
        weights = ops.broadcast_to(weights, ops.shape(y_true))
    real = weights != 0
    # Padding may carry any label; a valid one keeps the op from failing or returning NaN.
    safe_labels = ops.where(real, y_true, ops.zeros_like(y_true))
    token_losses = ops.sparse_categorical_crossentropy(safe_labels, logits, from_logits=True)
    token_losses = ops.where(real, token_losses, ops.zeros_like(token_losses))  # (B, T)
    return ops.sum(token_losses * weights), ops.sum(weights)


def masked_weights(mask, sample_weight=None):
    """A Keras mask (B, T) times the sample weights: (B, T) float32, 0 at padding.

    `sample_weight` may be None, (B, T), (B, T, 1) or per sequence (B,), which weighs each
    row (not each position, as a plain broadcast of (B,) against (B, T) would).
    """
    mask = ops.cast(mask, "float32")
    if sample_weight is None:
        return mask
    weights = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    if len(weights.shape) == len(mask.shape) + 1:
        weights = ops.squeeze(weights, axis=-1)  # (B, T, 1) -> (B, T)
    while len(weights.shape) < len(mask.shape):
        weights = ops.expand_dims(weights, axis=-1)  # per sequence (B,) -> (B, 1)
    return mask * weights


def masked_sparse_cross_entropy(y_true, logits, sample_weight=None):
    """Mean cross-entropy over real tokens: sum(w * ce) / sum(w), in float32.

    Args:
        y_true: int tensor (B, T), target ids.
        logits: float tensor (B, T, V).
        sample_weight: optional float tensor (B, T); 0 marks padding.

    Returns:
        A float32 scalar; 0 when every weight is 0.

    Example:

    >>> float(masked_sparse_cross_entropy([[1, 0]], ops.zeros((1, 2, 4)), [[1.0, 0.0]]))
    1.3862943649291992
    """
    total, count = cross_entropy_sums(y_true, logits, sample_weight)
    return ops.divide_no_nan(total, count)


@keras.saving.register_keras_serializable(package="keras_lm")
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits averaged over real tokens, exact under `tf.distribute`.

    The value is `sum(w * ce) / sum(w)` over the global batch. Under a strategy with R > 1
    replicas each replica returns `sum_r(w * ce) / sum(w over all replicas)` (the weight sum
    is all-reduced), which is the share Keras expects from a replica: the replicas' gradients
    are summed, and the loss Keras logs (replica value times R, averaged) is the global mean.

    A Keras mask on the logits (e.g. from `Embedding(mask_zero=True)`) is multiplied into the
    sample weights.

    Args:
        name: the loss name. Defaults to `"masked_sparse_cross_entropy"`.

    Call arguments:
        y_true: int tensor (B, T).
        y_pred: float tensor (B, T, V), logits (float32 math whatever their dtype).
        sample_weight: optional float tensor (B, T); 0 marks padding.

    Returns:
        A float32 scalar.

    Example:

    >>> model.compile(optimizer="adam", loss=MaskedSparseCrossEntropy())
    >>> model.fit(dataset_of_(ids, labels, weights))
    """

    def __init__(self, name="masked_sparse_cross_entropy"):
        super().__init__(name=name, reduction="sum", dtype="float32")

    def __call__(self, y_true, y_pred, sample_weight=None):
        mask = getattr(y_pred, "_keras_mask", None)  # Keras 3 (TF backend) stores masks here.
        if mask is not None:
            sample_weight = masked_weights(mask, sample_weight)
        with keras.name_scope(self.name):
            total, count = cross_entropy_sums(y_true, y_pred, sample_weight)
            replica = tf.distribute.get_replica_context()
            if replica is not None and replica.num_replicas_in_sync > 1:
                count = replica.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(count))
            return ops.divide_no_nan(total, count)

    def call(self, y_true, y_pred):
        """Per-token cross-entropy (B, T), unweighted; `__call__` does the reduction."""
        labels = ops.cast(ops.convert_to_tensor(y_true), "int32")
        return ops.sparse_categorical_crossentropy(
            labels, ops.cast(y_pred, "float32"), from_logits=True
        )

    def get_config(self):
        return {"name": self.name}
