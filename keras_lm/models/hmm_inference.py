"""Hidden Markov model inference in log space: forward, backward, expected counts, Viterbi.

Plain functions of the normalised log-parameters, shared by `HMMLanguageModel` (likelihood,
next-token logits, decoding) and `baum_welch` (expected counts). They run eagerly, in
`tf.function`, under XLA and under `tf.GradientTape`, in float32 or float64 (the dtype of the
parameters).

Shape letters: B sequences, T time steps, K hidden states, V vocabulary.

Notation (Rabiner 1989, with the scaling of its section V.A kept in log space). With
pi = initial distribution, A[i, j] = P(z_{t+1} = j | z_t = i), E[k, v] = P(x_t = v | z_t = k):

    p_t(k) = P(z_t = k | x_{<t})               predictive state (p_0 = pi)
    c_t    = P(x_t | x_{<t}) = sum_k p_t(k) E[k, x_t]
    f_t(k) = P(z_t = k | x_{<=t}) = p_t(k) E[k, x_t] / c_t           filtered state
    p_{t+1} = f_t A
    log P(x) = sum_t log c_t

Every state vector is normalised at every step, so nothing underflows however long the
sequence. The normaliser c_t is a logsumexp over K; the prediction f_t A is one matmul of
max-shifted exponentials (`log_matmul_exp`) rather than a [B, K, K] logsumexp.

The scaled backward variable r_t(k) = P(x_{>t} | z_t = k) / P(x_{>t} | x_{<=t}) gives the
posteriors gamma_t = f_t * r_t and xi_t(i, j) = f_t(i) A[i, j] g_{t+1}(j) with
g_t(j) = E[j, x_t] r_t(j) / c_t (so gamma_t = p_t * g_t and r_t = A g_{t+1}).

Masks: `mask` [B, T] is True on real tokens, which come first in each row (right padding);
a padded step leaves the state unchanged and adds nothing to any sum.

Time loops use `tf.scan` rather than `keras.ops.scan`: the latter (TensorFlow backend, Keras
3.15) requires each step's output to have the shape of its carry.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def log_matmul_exp(log_x, log_m):
    """log(exp(log_x) @ exp(log_m)), with neither exponential overflowing or underflowing.

    Each row of `log_x` and each column of `log_m` is shifted by its maximum before the
    exponential, so the matrix product is one ordinary matmul. A result whose product falls
    below the dtype's smallest normal number (a probability ratio under ~1e-38 in float32
    relative to the two maxima) is floored there instead of becoming -inf.

    Args:
        log_x: float [..., K], log-values (finite).
        log_m: float [K, N], log-values (finite).

    Returns:
        float [..., N].

    Example:
    >>> out = log_matmul_exp(np.log([[0.5, 0.5]]), np.log([[0.2, 0.8], [0.6, 0.4]]))
    >>> np.exp(np.asarray(out)).round(3).tolist()
    [[0.4, 0.6]]
    """
    m_exp, m_shift = _column_shifted_exp(log_m)
    return _log_matmul(log_x, m_exp, m_shift)


def _column_shifted_exp(log_m):
    """(exp(log_m - column max) [K, N], column max [1, N]); the max is a constant for autodiff."""
    shift = ops.stop_gradient(ops.max(log_m, axis=0, keepdims=True))  # (1, N)
    return ops.exp(log_m - shift), shift


def _log_matmul(log_x, m_exp, m_shift):
    shift = ops.stop_gradient(ops.max(log_x, axis=-1, keepdims=True))  # (..., 1)
    product = ops.matmul(ops.exp(log_x - shift), m_exp)  # (..., N)
    tiny = float(np.finfo(keras.backend.standardize_dtype(product.dtype)).tiny)
    return ops.log(ops.maximum(product, tiny)) + shift + m_shift


def emission_log_probs(log_emission, token_ids):
    """log E[k, x_t] for every token: [K, V] and int [B, T] -> [B, T, K]."""
    return ops.take(ops.transpose(log_emission), token_ids, axis=0)


def forward(log_initial, log_transition, emissions, mask=None, resets=None, initial_state=None):
    """The forward (filtering) pass.

    Args:
        log_initial: [K], log pi.
        log_transition: [K, K], log A (rows sum to 1 in probability).
        emissions: [B, T, K], log E[k, x_t] (see `emission_log_probs`).
        mask: bool [B, T] or None (every token real).
        resets: bool [B, T] or None; where True the state before that token is pi again
            (a new document starts).
        initial_state: [B, K] log p_0, or None for log pi.

    Returns:
        (log_next [B, T, K]: log p_{t+1}, the state after token t;
         log_c [B, T]: log P(x_t | x_{<t}), 0 on padding;
         final [B, K]: the state after the last token, = log_next[:, -1]).
    """
    batch = ops.shape(emissions)[0]
    num_states = ops.shape(log_transition)[0]
    if initial_state is None:
        initial_state = ops.broadcast_to(log_initial[None, :], (batch, num_states))
    a_exp, a_shift = _column_shifted_exp(log_transition)
    bool_ones = ops.ones(ops.shape(emissions)[:2], dtype="bool")  # (B, T)
    mask = bool_ones if mask is None else ops.cast(mask, "bool")
    resets = ops.logical_not(bool_ones) if resets is None else ops.cast(resets, "bool")

    def step(carry, inputs):
        log_p, _ = carry  # (B, K)
        emission, valid, reset = inputs  # (B, K), (B,), (B,)
        log_p = ops.where(reset[:, None], log_initial[None, :], log_p)
        joint = log_p + emission  # (B, K)
        log_c = ops.logsumexp(joint, axis=-1)  # (B,)
        log_next = _log_matmul(joint - log_c[:, None], a_exp, a_shift)  # (B, K)
        log_next = ops.where(valid[:, None], log_next, log_p)
        return log_next, ops.where(valid, log_c, ops.zeros_like(log_c))

    elems = (
        ops.transpose(emissions, (1, 0, 2)),  # (T, B, K)
        ops.transpose(mask, (1, 0)),  # (T, B)
        ops.transpose(resets, (1, 0)),  # (T, B)
    )
    zeros = ops.zeros((batch,), dtype=emissions.dtype)
    log_next, log_c = tf.scan(step, elems, initializer=(initial_state, zeros))
    log_next = ops.transpose(log_next, (1, 0, 2))  # (B, T, K)
    return log_next, ops.transpose(log_c, (1, 0)), log_next[:, -1]


def log_likelihood(log_initial, log_transition, log_emission, token_ids, mask=None):
    """log P(x) of each row in nats, x_0 included: int [B, T] -> [B] (parameters' dtype)."""
    emissions = emission_log_probs(log_emission, token_ids)  # (B, T, K)
    _, log_c, _ = forward(log_initial, log_transition, emissions, mask)
    return ops.sum(log_c, axis=1)


def backward(log_transition, emissions, log_c, mask=None):
    """The scaled backward pass: log g_t = log E[., x_t] + log r_t - log c_t.

    Args:
        log_transition: [K, K], log A.
        emissions: [B, T, K], log E[k, x_t].
        log_c: [B, T], from `forward`.
        mask: bool [B, T] or None (right padding).

    Returns:
        log_g [B, T, K] (meaningless on padding).
    """
    if mask is None:
        mask = ops.ones(ops.shape(log_c), dtype="bool")
    a_exp, a_shift = _column_shifted_exp(ops.transpose(log_transition))

    def step(carry, inputs):
        message, _ = carry  # (B, K): log r_t for the step being visited
        emission, valid, log_c_t = inputs
        log_g = emission + message - log_c_t[:, None]  # (B, K)
        earlier = _log_matmul(log_g, a_exp, a_shift)  # log r_{t-1} = log (A g_t)
        return ops.where(valid[:, None], earlier, message), log_g

    elems = (
        ops.transpose(emissions, (1, 0, 2)),  # (T, B, K)
        ops.transpose(ops.cast(mask, "bool"), (1, 0)),  # (T, B)
        ops.transpose(log_c, (1, 0)),  # (T, B)
    )
    start = ops.zeros_like(emissions[:, 0])  # r = 1 after the last real token
    _, log_g = tf.scan(step, elems, initializer=(start, start), reverse=True)
    return ops.transpose(log_g, (1, 0, 2))  # (B, T, K)


def expected_counts(log_initial, log_transition, log_emission, token_ids, mask=None):
    """The E-step of Baum-Welch: posterior expected counts summed over a batch.

    Args:
        log_initial: [K]; log_transition: [K, K]; log_emission: [K, V] (normalised logs,
            float32 or float64; the recursions run in that dtype).
        token_ids: int [B, T].
        mask: bool [B, T] or None; real tokens first in each row.

    Returns:
        A dict of float64 tensors: `initial` [K] (sum of gamma_0), `transition` [K, K]
        (sum of xi_t), `emission` [K, V] (sum of gamma_t by token), `log_likelihood` [B]
        (log P(x) of each row, nats).
    """
    token_ids = ops.convert_to_tensor(token_ids, "int32")
    if mask is None:
        mask = ops.ones(ops.shape(token_ids), dtype="bool")
    mask = ops.cast(mask, "bool")
    emissions = emission_log_probs(log_emission, token_ids)  # (B, T, K)
    log_next, log_c, _ = forward(log_initial, log_transition, emissions, mask)
    log_g = backward(log_transition, emissions, log_c, mask)  # (B, T, K)
    batch = ops.shape(token_ids)[0]
    first = ops.broadcast_to(log_initial[None, None, :], (batch, 1, ops.shape(log_initial)[0]))
    log_before = ops.concatenate([first, log_next[:, :-1]], axis=1)  # log p_t, (B, T, K)

    weight = ops.cast(mask, "float64")[:, :, None]  # (B, T, 1)
    gamma = ops.exp(ops.cast(log_before + log_g, "float64")) * weight  # (B, T, K)
    # xi summed over (b, t) is A * (F^T G): F = f_t, G = g_{t+1}. g can be large where p is
    # tiny, so the contraction runs in float64.
    log_f = log_before + emissions - log_c[:, :, None]  # (B, T, K)
    f = ops.exp(ops.cast(log_f[:, :-1], "float64"))  # (B, T-1, K)
    g = ops.exp(ops.cast(log_g[:, 1:], "float64")) * weight[:, 1:]  # (B, T-1, K)
    transition = ops.exp(ops.cast(log_transition, "float64")) * ops.einsum("bti,btj->ij", f, g)
    vocabulary_size = ops.shape(log_emission)[1]
    emission = ops.segment_sum(
        ops.reshape(gamma, (-1, ops.shape(gamma)[-1])),  # (B * T, K)
        ops.reshape(token_ids, (-1,)),
        num_segments=vocabulary_size,
    )  # (V, K)
    return {
        "initial": ops.sum(gamma[:, 0], axis=0),
        "transition": transition,
        "emission": ops.transpose(emission),
        "log_likelihood": ops.cast(ops.sum(log_c, axis=1), "float64"),  # as `log_likelihood`
    }


def viterbi(log_initial, log_transition, emissions, mask=None):
    """The most likely state path of each row (max-product in log space).

    Args:
        log_initial: [K]; log_transition: [K, K].
        emissions: [B, T, K], log E[k, x_t].
        mask: bool [B, T] or None; real tokens first in each row.

    Returns:
        (paths int32 [B, T], -1 on padding; log_probs [B], log P(x, best path)).
    """
    batch, num_states = ops.shape(emissions)[0], ops.shape(emissions)[2]
    if mask is None:
        mask = ops.ones(ops.shape(emissions)[:2], dtype="bool")
    mask = ops.cast(mask, "bool")
    identity = ops.broadcast_to(ops.arange(num_states, dtype="int32")[None], (batch, num_states))
    first = ops.equal(ops.arange(ops.shape(emissions)[1]), 0)  # (T,)

    def step(carry, inputs):
        delta, _ = carry  # (B, K)
        emission, valid, is_first = inputs  # (B, K), (B,), ()
        scores = delta[:, :, None] + log_transition[None]  # (B, K from, K to)
        pointer = ops.cast(ops.argmax(scores, axis=1), "int32")  # (B, K)
        best = ops.where(is_first, log_initial[None, :], ops.max(scores, axis=1)) + emission
        keep = ops.logical_or(is_first, ops.logical_not(valid))[:, None]  # (B, 1)
        return (ops.where(valid[:, None], best, delta), ops.where(keep, identity, pointer))

    elems = (ops.transpose(emissions, (1, 0, 2)), ops.transpose(mask, (1, 0)), first)
    start = ops.zeros_like(emissions[:, 0])
    deltas, pointers = tf.scan(step, elems, initializer=(start, identity))  # (T, B, K) each
    last = ops.cast(ops.argmax(deltas[-1], axis=-1), "int32")  # (B,)

    def back(carry, pointer):  # carry[0]: the state at t; emits it and moves to t - 1
        state, _ = carry
        return ops.take_along_axis(pointer, state[:, None], axis=1)[:, 0], state

    _, paths = tf.scan(back, pointers, initializer=(last, last), reverse=True)  # (T, B)
    paths = ops.transpose(paths, (1, 0))  # (B, T)
    paths = ops.where(mask, paths, -ops.ones_like(paths))
    return paths, ops.max(deltas[-1], axis=-1)
