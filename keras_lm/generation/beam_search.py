"""Beam search for encoder-decoder models, in one XLA-compiled loop.

A model takes part by offering (the `Seq2SeqTransformer` protocol):
    decoding_state(encoder_token_ids [B, S]) -> a tuple of tensors with leading axis B (the
        encoder output and whatever else depends on the source only, computed once);
    init_cache(batch_size, length) -> a tuple of tensors with leading axis batch_size;
    call_with_cache(token_ids [B, 1], cache, index, *state) -> (logits [B, 1, V], cache);
    decode(token_ids [B, T], *state) -> logits [B, T, V] (the uncached path).

Scores. A hypothesis y of n generated tokens (its end-of-sequence token included, if it has
one) scores

    score(y) = log P(y | x) / lp(n),    lp(n) = ((5 + n) / 6) ** length_penalty

(Wu et al., 2016, https://arxiv.org/abs/1609.08144). `length_penalty=0` ranks by log
probability; larger values favour longer outputs. Hypotheses are returned best first.

The search (shape letters: B batch, K `beam_size`, N `max_length`, V vocabulary). Each step
extends the K alive hypotheses by every token and keeps the 2K best extensions by log
probability. Of those, an extension ending in `eos_id` that ranks among the first K becomes a
finished hypothesis (the K best finished ones are kept); the K best extensions that do not end
in `eos_id` stay alive. (Finishing only top-K extensions makes `beam_size=1` exactly greedy
decoding when `length_penalty=0`.) The loop stops early, at end of sequence, once every input
holds K finished hypotheses and none of its alive hypotheses can still beat the worst of them:
log probabilities only fall as a hypothesis grows and lp(n) <= lp(N), so no continuation of
an alive hypothesis can score above `max(alive log P) / lp(N)`. At the end, alive hypotheses
(those cut off by `max_length`) compete with the finished ones by the same score; ties go to
the finished ones.

Each input's beams are independent: inputs of different lengths in one batch (padded with
id 0, masked by the model's encoder) give the results they give alone.
"""

import collections
import weakref

import numpy as np
import tensorflow as tf

_COMPILED = weakref.WeakKeyDictionary()

BeamSearchOutput = collections.namedtuple(
    "BeamSearchOutput", ["sequences", "scores", "lengths", "finished", "steps"]
)
BeamSearchOutput.__doc__ = """Result of `beam_search`, hypotheses best first (numpy arrays).

Fields:
    sequences: int32 [B, K, N], generated tokens (end-of-sequence included), 0 after the end.
    scores: float32 [B, K], `log P / lp(length)`; -inf marks an empty slot (fewer than K
        distinct hypotheses exist).
    lengths: int32 [B, K], generated tokens of each hypothesis.
    finished: bool [B, K], whether the hypothesis ended with the end-of-sequence token.
    steps: int, decoding steps run (< N when the search stopped early).
"""


def length_penalty_factor(length, alpha):
    """lp(n) = ((5 + n) / 6) ** alpha of Wu et al. (2016); works on numbers and tensors.

    Example:
    >>> length_penalty_factor(7, 1.0)
    2.0
    """
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(model, encoder_token_ids, max_length, beam_size=4, length_penalty=0.0,
                bos_id=None, eos_id=None, use_cache=True, jit_compile=True):
    """Finds the `beam_size` best outputs for each input (see the module docstring).

    Args:
        model: an encoder-decoder model following the protocol of the module docstring.
        encoder_token_ids: int [B, S] source ids, padded with 0.
        max_length: int N >= 1, most tokens generated per hypothesis; at most the model's
            `target_sequence_length` where it has one.
        beam_size: int K >= 1.
        length_penalty: float alpha >= 0 of lp(n) = ((5 + n) / 6) ** alpha.
        bos_id: int, the first decoder input.
        eos_id: int, the end-of-sequence token.
        use_cache: decode with the self-attention cache (default) or recompute every prefix
            (same results; for tests and models without a cache).
        jit_compile: compile the loop with XLA (default); False runs it as a TF graph, which
            compiles faster (tests).

    Returns:
        A `BeamSearchOutput` of numpy arrays, hypotheses best first.

    Raises:
        ValueError: a bad `beam_size`, `max_length` (also: longer than the model's target
            context), `length_penalty`, a missing `bos_id` /
            `eos_id`, or `encoder_token_ids` that is not [B, S].

    Example:
    >>> out = beam_search(model, [[5, 6, 3]], max_length=10, beam_size=4, bos_id=2,
    ...                   eos_id=3)  # doctest: +SKIP
    >>> out.sequences.shape  # doctest: +SKIP
    (1, 4, 10)
    """
    for name, value in (("beam_size", beam_size), ("max_length", max_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
    if not length_penalty >= 0:
        raise ValueError(
            "`length_penalty` must be >= 0 (0 ranks by log probability; larger values favour "
            f"longer outputs). Received: length_penalty={length_penalty!r}"
        )
    if bos_id is None or eos_id is None:
        raise ValueError(
            "Beam search needs the target's `bos_id` (first decoder input) and `eos_id` (end of "
            f"sequence). Received: bos_id={bos_id!r}, eos_id={eos_id!r}"
        )
    encoder_token_ids = np.asarray(encoder_token_ids)
    if encoder_token_ids.ndim != 2 or not np.issubdtype(encoder_token_ids.dtype, np.integer):
        raise ValueError(
            "`encoder_token_ids` must be an int array [batch, source_length] (pad with 0). "
            f"Received: shape={encoder_token_ids.shape}, dtype={encoder_token_ids.dtype}"
        )
    longest = getattr(model, "target_sequence_length", None)
    if longest is not None and max_length > longest:
        raise ValueError(
            f"`max_length` must be at most the model's target_sequence_length ({longest}): a "
            "decoder position past it has no embedding. Received: "
            f"max_length={max_length!r}"
        )
    if hasattr(model, "built") and not model.built:
        model.build()  # create the weights eagerly, never inside the compiled loop
    key = (bool(use_cache), int(beam_size), int(max_length), bool(jit_compile))
    fns = _COMPILED.setdefault(model, {})
    if key not in fns:
        fns[key] = tf.function(
            lambda ids, bos, eos, alpha: _beam_search_loop(
                model, ids, bos, eos, alpha, beam_size=key[1], max_length=key[2],
                use_cache=key[0]),
            jit_compile=key[3],
        )
    outputs = fns[key](
        tf.convert_to_tensor(encoder_token_ids, tf.int32),
        tf.constant(bos_id, tf.int32),
        tf.constant(eos_id, tf.int32),
        tf.constant(length_penalty, tf.float32),
    )
    sequences, scores, lengths, finished, steps = (np.asarray(o) for o in outputs)
    return BeamSearchOutput(sequences, scores, lengths, finished, int(steps))


def _beam_search_loop(model, encoder_token_ids, bos_id, eos_id, alpha, beam_size, max_length,
                      use_cache):
    k, n = beam_size, max_length
    batch = tf.shape(encoder_token_ids)[0]
    neg_inf = tf.constant(float("-inf"), tf.float32)
    state = tuple(model.decoding_state(encoder_token_ids))  # the encoder runs once
    # (B * K, ...): the K beams of an input are adjacent rows.
    state = tuple(tf.repeat(s, k, axis=0) for s in state)

    # Column 0 holds bos; step t writes the token at column t + 1.
    sequences = tf.concat(
        [tf.fill([batch, k, 1], bos_id), tf.zeros([batch, k, n], tf.int32)], axis=-1
    )  # (B, K, N + 1)
    # Only beam 0 is alive at first, so the first step expands one hypothesis, not K copies.
    alive_log_probs = tf.tile(
        tf.concat([tf.zeros([1, 1]), tf.fill([1, k - 1], neg_inf)], axis=1), [batch, 1]
    )  # (B, K)
    finished_sequences = tf.zeros_like(sequences)
    finished_scores = tf.fill([batch, k], neg_inf)
    finished_lengths = tf.zeros([batch, k], tf.int32)
    if use_cache:
        cache = tuple(tf.convert_to_tensor(c) for c in model.init_cache(batch * k, n))
    else:
        cache = ()
    max_penalty = length_penalty_factor(tf.cast(n, tf.float32), alpha)

    def condition(t, sequences, alive_log_probs, finished_sequences, finished_scores,
                  finished_lengths, cache):
        best_possible = tf.reduce_max(alive_log_probs, axis=-1) / max_penalty  # (B,)
        done = finished_scores[:, -1] >= best_possible  # sorted: [:, -1] is the worst kept
        return tf.logical_and(t < n, tf.logical_not(tf.reduce_all(done)))

    def body(t, sequences, alive_log_probs, finished_sequences, finished_scores,
             finished_lengths, cache):
        flat = tf.reshape(sequences, [batch * k, n + 1])
        if use_cache:
            logits, cache = model.call_with_cache(
                tf.gather(flat, [t], axis=1), cache, t, *state
            )  # (B * K, 1, V)
            logits = logits[:, 0]
            cache = tuple(tf.convert_to_tensor(c) for c in cache)
        else:
            logits = tf.gather(model.decode(flat[:, :n], *state), t, axis=1)  # (B * K, V)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        vocabulary_size = log_probs.shape[-1]
        candidates = alive_log_probs[:, :, None] + tf.reshape(
            log_probs, [batch, k, vocabulary_size]
        )  # (B, K, V)
        values, indices = tf.math.top_k(
            tf.reshape(candidates, [batch, k * vocabulary_size]), 2 * k
        )  # (B, 2K), best first
        parents = indices // vocabulary_size
        tokens = indices % vocabulary_size
        candidate_sequences = _set_column(
            tf.gather(sequences, parents, batch_dims=1), t + 1, tokens
        )  # (B, 2K, N + 1)
        is_eos = tf.equal(tokens, eos_id)

        # Finished: end-of-sequence extensions among the K best; keep the K best overall.
        length = tf.cast(t + 1, tf.float32)
        among_best = tf.range(2 * k)[None, :] < k
        new_scores = tf.where(tf.logical_and(is_eos, among_best),
                              values / length_penalty_factor(length, alpha), neg_inf)
        finished_scores, (finished_sequences, finished_lengths) = _top(
            k,
            tf.concat([finished_scores, new_scores], axis=1),  # old first: ties keep them
            tf.concat([finished_sequences, candidate_sequences], axis=1),
            tf.concat([finished_lengths, tf.fill([batch, 2 * k], t + 1)], axis=1),
        )

        # Alive: the K best extensions that did not end.
        alive_values, alive_indices = tf.math.top_k(tf.where(is_eos, neg_inf, values), k)
        sequences = tf.gather(candidate_sequences, alive_indices, batch_dims=1)
        if use_cache:
            beam_parents = tf.gather(parents, alive_indices, batch_dims=1)  # (B, K)
            cache = tuple(_reorder(c, beam_parents, batch, k) for c in cache)
        return (t + 1, sequences, alive_values, finished_sequences, finished_scores,
                finished_lengths, cache)

    steps, sequences, alive_log_probs, finished_sequences, finished_scores, finished_lengths, _ = (
        tf.while_loop(
            condition,
            body,
            (tf.constant(0), sequences, alive_log_probs, finished_sequences, finished_scores,
             finished_lengths, cache),
            maximum_iterations=n,
        )
    )
    # Hypotheses cut off by max_length (or by an early stop, where they cannot win) compete
    # with the finished ones; finished come first so that ties go to them.
    alive_scores = alive_log_probs / length_penalty_factor(tf.cast(steps, tf.float32), alpha)
    scores, (sequences, lengths, finished) = _top(
        k,
        tf.concat([finished_scores, alive_scores], axis=1),
        tf.concat([finished_sequences, sequences], axis=1),
        tf.concat([finished_lengths, tf.fill([batch, k], steps)], axis=1),
        tf.concat([tf.ones([batch, k], tf.bool), tf.zeros([batch, k], tf.bool)], axis=1),
    )
    return sequences[:, :, 1:], scores, lengths, finished, steps


def _top(k, scores, *rows):
    """The k best of scores [B, M] (stable: earlier entries win ties) and their rows [B, M, ...]."""
    scores, indices = tf.math.top_k(scores, k)
    return scores, tuple(tf.gather(r, indices, batch_dims=1) for r in rows)


def _set_column(sequences, column, values):
    """sequences[:, :, column] = values, as an XLA-friendly select. [B, M, L], [B, M]."""
    hit = tf.equal(tf.range(tf.shape(sequences)[-1]), column)[None, None, :]
    return tf.where(hit, values[:, :, None], sequences)


def _reorder(cache, parents, batch, beam_size):
    """Gathers each input's cache rows [B * K, ...] by the parent beams [B, K]."""
    shape = tf.shape(cache)
    grouped = tf.reshape(cache, tf.concat([[batch, beam_size], shape[1:]], axis=0))
    return tf.reshape(tf.gather(grouped, parents, batch_dims=1), shape)
