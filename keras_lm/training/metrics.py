"""Language-model metrics: perplexity and token accuracy, weighted by real tokens.

Shapes: B batch, T tokens, V vocabulary.
"""

import keras
from keras import ops

from keras_lm.training.losses import cross_entropy_sums
from keras_lm.training.losses import masked_weights


@keras.saving.register_keras_serializable(package="keras_lm")
class Perplexity(keras.metrics.Metric):
    """exp of the mean cross-entropy over all real tokens seen since the last reset.

    It accumulates `sum(w * ce)` and `sum(w)` (summed across replicas under `tf.distribute`),
    so the result is the exact corpus-level perplexity, not a mean of per-batch perplexities.
    Cross-entropy is computed in float32 from logits of any dtype. Before any real token (all
    weights 0, or no update since the reset) the result is NaN: there is nothing to score.

    Args:
        name: metric name. Defaults to `"perplexity"`.
        dtype: dtype of the accumulators. Defaults to `"float32"`.

    Call arguments (`update_state`):
        y_true: int tensor (B, T).
        y_pred: float tensor (B, T, V), logits.
        sample_weight: optional float tensor (B, T) (or (B,) per sequence); 0 marks padding.
            A Keras mask on `y_pred` (e.g. from `Embedding(mask_zero=True)`) is multiplied
            into it, so masked positions count as padding.

    Example:

    >>> metric = Perplexity()
    >>> metric.update_state([[1, 2]], ops.zeros((1, 2, 4)))
    >>> float(metric.result())  # uniform over 4 tokens
    4.0
    """

    def __init__(self, name="perplexity", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, aggregation="sum", name="total"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, aggregation="sum", name="count"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        # A Keras mask on the logits (e.g. from `Embedding(mask_zero=True)`) marks padding, as
        # it does for `token_accuracy` (a MeanMetricWrapper) and `MaskedSparseCrossEntropy`.
        mask = getattr(y_pred, "_keras_mask", None)
        if mask is not None:
            sample_weight = masked_weights(mask, sample_weight)
        total, count = cross_entropy_sums(y_true, y_pred, sample_weight)
        self.total.assign_add(ops.cast(total, self.dtype))
        self.count.assign_add(ops.cast(count, self.dtype))

    def result(self):
        # No real token seen yet: NaN, not exp(0) = 1.0, a perfect score nothing earned.
        return ops.where(self.count > 0, ops.exp(ops.divide_no_nan(self.total, self.count)),
                         ops.full((), float("nan"), dtype=self.dtype))

    def reset_state(self):
        self.total.assign(ops.zeros((), dtype=self.dtype))
        self.count.assign(ops.zeros((), dtype=self.dtype))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def token_accuracy(name="token_accuracy"):
    """Fraction of real tokens whose argmax prediction is the target.

    Compile it as a weighted metric (`weighted_metrics=[token_accuracy()]`) so that padding
    (weight 0) is left out: the result is `sum(w * correct) / sum(w)`.

    Args:
        name: metric name. Defaults to `"token_accuracy"`.

    Returns:
        A `keras.metrics.SparseCategoricalAccuracy`.

    Example:

    >>> model.compile(optimizer="adam", loss=MaskedSparseCrossEntropy(),
    ...               weighted_metrics=[token_accuracy(), Perplexity()])
    """
    return keras.metrics.SparseCategoricalAccuracy(name=name)
