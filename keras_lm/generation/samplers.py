"""Next-token selection: greedy, temperature, top-k and top-p (nucleus) sampling.

Plain functions over float32 logits [B, V] that take their settings as tensors, so one
XLA-compiled decoding loop (and one exported signature) serves every sampling mode.
Sampling is stateless: the same seed gives the same tokens. It is also independent of the
batch: every row draws with the same noise (Gumbel-max), so a row's token depends only on
its own logits and the seed. A prompt sampled alone or batched with any other prompts
gives the same text, which is what a server batching requests needs.
"""

import numpy as np
import tensorflow as tf

_TINY = float(np.finfo(np.float32).tiny)  # keeps log(uniform) finite


def filter_logits(logits, top_k=0, top_p=1.0):
    """Keeps the `top_k` largest logits and the smallest set with probability >= `top_p`.

    Args:
        logits: float32 [B, V].
        top_k: int scalar; 0 (or >= V) keeps every token.
        top_p: float scalar in (0, 1]; 1 keeps every token (nucleus sampling,
            Holtzman et al., 2020); 0 or less keeps only the most likely token.

    Returns:
        float32 [B, V], removed tokens set to -inf. The most likely token is always kept.
    """
    vocabulary_size = tf.shape(logits)[-1]
    top_k = tf.cast(top_k, tf.int32)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary_size), vocabulary_size)
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")  # (B, V)
    kth_largest = tf.gather(sorted_logits, k - 1, axis=-1)[:, None]  # (B, 1)
    neg_inf = tf.fill(tf.shape(logits), float("-inf"))
    logits = tf.where(logits < kth_largest, neg_inf, logits)

    sorted_logits = tf.where(
        sorted_logits < kth_largest, tf.fill(tf.shape(sorted_logits), float("-inf")), sorted_logits
    )
    sorted_probs = tf.nn.softmax(sorted_logits, axis=-1)
    # Mass strictly before each token; a token is kept while that mass is below top_p.
    mass_before = tf.cumsum(sorted_probs, axis=-1, exclusive=True)
    keep = mass_before < tf.cast(top_p, tf.float32)
    keep = tf.logical_or(keep, tf.range(vocabulary_size)[None, :] == 0)  # top_p <= 0 too
    smallest_kept = tf.reduce_min(
        tf.where(keep, sorted_logits, tf.fill(tf.shape(sorted_logits), float("inf"))),
        axis=-1,
        keepdims=True,
    )
    return tf.where(logits < smallest_kept, neg_inf, logits)


def sample(logits, temperature=0.0, top_k=0, top_p=1.0, seed=(0, 0)):
    """Picks one token per row.

    Args:
        logits: float32 [B, V].
        temperature: float scalar; 0 means greedy (argmax).
        top_k: int scalar, see `filter_logits`.
        top_p: float scalar, see `filter_logits`.
        seed: int32 [2], seed of the stateless sampler (vary it per step).

    Returns:
        int32 [B].

    A sampled token is argmax(logits / temperature + g) with Gumbel noise g [V] drawn from
    `seed` once for all rows (Gumbel-max: the argmax is distributed as the softmax). So
    row b's token depends only on row b's logits and the seed, not on its index or on the
    other rows; identical rows get identical tokens.
    """
    logits = tf.cast(logits, tf.float32)
    temperature = tf.cast(temperature, tf.float32)

    def greedy():
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def sampled():
        scaled = logits / tf.maximum(temperature, 1e-6)
        filtering = tf.logical_or(tf.cast(top_k, tf.int32) > 0, tf.cast(top_p, tf.float32) < 1.0)
        # Plain sampling skips the sort that top-k / top-p need.
        filtered = tf.cond(filtering, lambda: filter_logits(scaled, top_k, top_p), lambda: scaled)
        uniform = tf.random.stateless_uniform(
            tf.shape(filtered)[-1:], seed=tf.cast(seed, tf.int32),
            minval=_TINY, maxval=1.0, dtype=tf.float32,
        )  # (V,): one draw shared by every row
        gumbel = -tf.math.log(-tf.math.log(uniform))
        return tf.argmax(filtered + gumbel[None, :], axis=-1, output_type=tf.int32)

    # A conditional, not a select: greedy decoding skips the sort and the draw every step.
    return tf.cond(temperature > 0.0, sampled, greedy)
