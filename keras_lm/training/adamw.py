"""AdamW that never decays vectors or embedding tables."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_lm")
class AdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with weight decay only on matrices that are not embeddings.

    Decoupled weight decay pulls weights towards zero. That is a useful prior for projection
    matrices, but it hurts norm scales (LayerNorm/RMSNorm gamma should stay near 1), biases and
    embedding tables (rare tokens' rows would shrink away between their updates). GPT-2/3,
    nanoGPT and BERT all exempt them.

    Keras's `exclude_from_weight_decay(var_names=...)` matches a regular expression against
    `variable.name`, which in Keras 3 is the bare name (`"kernel"`, `"gamma"`), not the path,
    so "embedding" would not find a table named `"table"` inside a `token_embedding` layer, and
    a norm's `"scale"` is easy to miss. This class therefore decides by shape and path, at
    `build()` time, when the variables are known:

    - every variable with fewer than 2 dimensions (biases, norm scales/offsets, scalars), and
    - every variable whose path (`"layer/.../name"`, lower-cased) contains one of
      `no_decay_names` (default `("embedding",)`: any variable of a layer named like an
      embedding, e.g. `token_embedding/embeddings`)

    is handed to the public `exclude_from_weight_decay(var_list=...)`, which identifies variables
    by object (so it also works on mirrored/TPU-replicated copies).

    Two more fixes to Keras 3.15 (TensorFlow backend), both needed for a multi-replica run to
    follow the same trajectory as a single-device run with the same global batch:

    - Global-norm clipping (`global_clipnorm`) happens after the gradients are summed across
      replicas. Keras clips each replica's partial gradient by its own norm before the sum, so
      with R replicas the step could reach R times the limit.
    - Embedding gradients (`tf.IndexedSlices`, one slice per occurrence of a token) are summed
      into a dense tensor first. Keras squares them slice by slice (`ops.square` keeps the
      slices), so a token seen k times in a batch gets Adam's `v += sum(g_i ** 2)` instead of
      `(sum g_i) ** 2` (a step up to sqrt(k) too large), and the clipping norm is wrong the
      same way. Adam updates `m` and `v` densely anyway, so this costs little extra.

    Args:
        no_decay_names: tuple of lower-case substrings; variables whose path contains one are
            not decayed. Defaults to `("embedding",)`.
        **kwargs: passed to `keras.optimizers.AdamW` (learning_rate, weight_decay, beta_1,
            beta_2, epsilon, global_clipnorm, ...).

    Example:

    >>> optimizer = AdamW(learning_rate=1e-3, weight_decay=0.1, global_clipnorm=1.0)
    >>> model.compile(optimizer=optimizer, loss=...)
    """

    def __init__(self, no_decay_names=("embedding",), **kwargs):
        super().__init__(**kwargs)
        self.no_decay_names = tuple(no_decay_names)

    def build(self, var_list):
        if not self.built:
            self.exclude_from_weight_decay(var_list=[v for v in var_list if not self.decays(v)])
        super().build(var_list)

    def _clip_gradients(self, grads):
        if self.global_clipnorm:
            return grads  # Clipped after the cross-replica sum, in _all_reduce_sum_gradients.
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Keras's TF optimizer calls this once per step, in every strategy, just before
        # update_step: the one place where the summed (global-batch) gradient exists.
        grads_and_vars = super()._all_reduce_sum_gradients(grads_and_vars)
        grads = [
            tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g  # sums repeats
            for g, _ in grads_and_vars
        ]
        if self.global_clipnorm:
            grads, _ = tf.clip_by_global_norm(grads, self.global_clipnorm)
        return [(g, v) for g, (_, v) in zip(grads, grads_and_vars)]

    def decays(self, variable):
        """Whether weight decay applies to `variable` (a matrix that is not an embedding)."""
        if len(variable.shape) < 2:
            return False
        path = str(getattr(variable, "path", variable.name)).lower()
        return not any(name in path for name in self.no_decay_names)

    def get_config(self):
        config = super().get_config()
        config.update({"no_decay_names": list(self.no_decay_names)})
        return config
