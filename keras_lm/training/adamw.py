"""AdamW that never decays vectors or embedding tables."""

import keras
import numpy as np
import tensorflow as tf

from keras_lm.layers.fused import compiled_by_xla


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

    One speed change (the speed issue): with one replica, the update is **fused**. Adam's
    moments live in two flat vectors (m, v) instead of one pair of variables per weight, and
    one step updates all weights with one concatenated gradient: a handful of graph ops
    instead of ~20 per weight. That is what makes the first step (tracing and XLA
    compilation) of a small model fast: the per-variable update was about 40% of it. The
    arithmetic is Keras's AdamW, in the same order (tested to agree with it to float32
    rounding). With several replicas (`MirroredStrategy`, TPU), `amsgrad` or gradient
    accumulation, the per-variable Keras update is used (`fused=False` forces it).

    Args:
        no_decay_names: tuple of lower-case substrings; variables whose path contains one are
            not decayed. Defaults to `("embedding",)`.
        fused: bool, use the fused update where it applies (default True).
        **kwargs: passed to `keras.optimizers.AdamW` (learning_rate, weight_decay, beta_1,
            beta_2, epsilon, global_clipnorm, ...).

    Example:

    >>> optimizer = AdamW(learning_rate=1e-3, weight_decay=0.1, global_clipnorm=1.0)
    >>> model.compile(optimizer=optimizer, loss=...)
    """

    def __init__(self, no_decay_names=("embedding",), fused=True, **kwargs):
        super().__init__(**kwargs)
        self.no_decay_names = tuple(no_decay_names)
        self.fused = bool(fused)
        self._fused_layout = None  # (offsets, sizes, decay mask) once built fused

    def build(self, var_list):
        if self.built:
            return
        self.exclude_from_weight_decay(var_list=[v for v in var_list if not self.decays(v)])
        use_fused = (
            self.fused
            and not self.amsgrad
            and not self.gradient_accumulation_steps
            and tf.distribute.get_strategy().num_replicas_in_sync == 1
        )
        if not use_fused:
            super().build(var_list)
            return
        # The base optimizer's build (iterations, learning rate, variable indices), without
        # Adam's per-variable slots.
        keras.optimizers.Optimizer.build(self, var_list)
        sizes = [int(np.prod(v.shape)) for v in var_list]
        offsets = np.cumsum([0] + sizes[:-1]).tolist()
        decay_mask = np.concatenate(
            [np.full([n], float(self._use_weight_decay(v)), np.float32) for v, n in
             zip(var_list, sizes)] or [np.zeros([0], np.float32)]
        )
        total = int(sum(sizes))
        self._momentum_vector = self.add_variable((total,), dtype="float32", name="momentum")
        self._velocity_vector = self.add_variable((total,), dtype="float32", name="velocity")
        self._momentums, self._velocities = [], []
        self._fused_layout = (offsets, sizes, decay_mask)

    def _apply_weight_decay(self, variables):
        if self._fused_layout is None:
            super()._apply_weight_decay(variables)
        # Fused: the decay is part of the one update in _backend_update_step.

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if self._fused_layout is None:
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        offsets, sizes, decay_mask = self._fused_layout
        indices = [self._get_variable_index(v) for v in trainable_variables]
        variables = [v.value if isinstance(v, keras.Variable) else v
                     for v in trainable_variables]
        grads = [g for g, _ in self._summed_dense_gradients(list(zip(grads, variables)))]
        by_index = dict(zip(indices, zip(grads, variables)))
        all_variables = self._trainable_variables
        # Weights without a gradient this step (unused layers) keep their values and
        # moments, as in Keras, which skips them: zero gradient, then masked out.
        keep = np.concatenate([np.full([n], float(i in by_index), np.float32)
                               for i, n in enumerate(sizes)])
        flat_grad = tf.concat([
            tf.reshape(tf.cast(by_index[i][0], tf.float32), [-1]) if i in by_index
            else tf.zeros([n], tf.float32) for i, n in enumerate(sizes)
        ], axis=0)
        flat_vars = tf.concat([tf.reshape(tf.cast(v.value, tf.float32), [-1])
                               for v in all_variables], axis=0)
        # Tensors, not variables, into the XLA function: a variable argument with
        # `reduce_retracing` can reuse another optimizer's trace of another length.
        m = tf.convert_to_tensor(self._momentum_vector.value)
        v = tf.convert_to_tensor(self._velocity_vector.value)
        update = _flat_adamw_update if compiled_by_xla() else _flat_adamw_update_xla()
        new_m, new_v, new_vars = update(
            flat_grad, flat_vars, m, v, tf.constant(decay_mask),
            None if keep.all() else tf.constant(keep),
            tf.cast(learning_rate, tf.float32), tf.cast(self.iterations + 1, tf.float32),
            tf.cast(self.beta_1, tf.float32), tf.cast(self.beta_2, tf.float32),
            tf.cast(self.weight_decay, tf.float32), self.epsilon,
            float(self.global_clipnorm) if self.global_clipnorm else None,
        )
        self._momentum_vector.assign(new_m)
        self._velocity_vector.assign(new_v)
        for i, segment in enumerate(tf.split(new_vars, sizes)):
            if i in by_index:
                variable = by_index[i][1]
                variable.assign(tf.cast(tf.reshape(segment, variable.shape), variable.dtype))

    def _clip_gradients(self, grads):
        if self.global_clipnorm:
            return grads  # Clipped after the cross-replica sum, in _all_reduce_sum_gradients.
        return super()._clip_gradients(grads)

    def _summed_dense_gradients(self, grads_and_vars):
        """Sums across replicas; sparse (embedding) gradients become dense (see above)."""
        grads_and_vars = super()._all_reduce_sum_gradients(grads_and_vars)
        return [
            (tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g, v)  # sums repeats
            for g, v in grads_and_vars
        ]

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Keras's TF optimizer calls this once per step, in every strategy, just before
        # update_step: the one place where the summed (global-batch) gradient exists.
        grads_and_vars = self._summed_dense_gradients(grads_and_vars)
        grads = [g for g, _ in grads_and_vars]
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
        config.update({"no_decay_names": list(self.no_decay_names), "fused": self.fused})
        return config


def _flat_adamw_update(grad, variables, m, v, decay_mask, keep, lr, step, beta_1, beta_2,
                       weight_decay, epsilon, global_clipnorm):
    """Keras's AdamW arithmetic, in its order, on flat float32 vectors [N] of all weights.

    Args:
        grad, variables, m, v: [N], the gradient, the weights and Adam's two moments.
        decay_mask: [N], 1 where the weight decays, else 0.
        keep: [N], 1 where the weight has a gradient this step (elsewhere the weight and
            its moments keep their values), or None when every weight has one.
        lr, step (1-based), beta_1, beta_2, weight_decay: float32 scalars.
        epsilon: Python float.
        global_clipnorm: Python float, or None for no clipping.

    Returns:
        (new m, new v, new weights), [N] each.
    """
    if global_clipnorm:  # clip_by_global_norm's formula, on the one flat vector
        norm = tf.norm(grad)
        clip = tf.constant(global_clipnorm, tf.float32)
        grad = grad * (clip / tf.maximum(norm, clip))
    alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
    new_m = m + (grad - m) * (1 - beta_1)
    new_v = v + (tf.square(grad) - v) * (1 - beta_2)
    decayed = variables - variables * (decay_mask * weight_decay * lr)
    new_variables = decayed - (new_m * alpha) / (tf.sqrt(new_v) + epsilon)
    if keep is not None:
        kept = keep > 0
        new_m = tf.where(kept, new_m, m)
        new_v = tf.where(kept, new_v, v)
        new_variables = tf.where(kept, new_variables, variables)
    return new_m, new_v, new_variables


def _flat_adamw_update_xla():
    """`_flat_adamw_update` as one XLA function: outside XLA (the `mixed_bfloat16` step on
    CPU) its dozen element-wise passes over every weight become one (about 3% of the baby
    GPT's bfloat16 step, experiments/benchmarks.md)."""
    global _FLAT_ADAMW_UPDATE_XLA
    if _FLAT_ADAMW_UPDATE_XLA is None:
        _FLAT_ADAMW_UPDATE_XLA = tf.function(_flat_adamw_update, jit_compile=True,
                                             reduce_retracing=True)
    return _FLAT_ADAMW_UPDATE_XLA


_FLAT_ADAMW_UPDATE_XLA = None
