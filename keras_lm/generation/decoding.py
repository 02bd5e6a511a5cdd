"""Autoregressive decoding for keras_lm language models, in one XLA-compiled loop.

A model takes part by offering `sequence_length`, `vocabulary_size`, `init_cache(batch,
length)`, `call_with_cache(token_ids, cache, index) -> (logits, cache)` and `__call__`
(full forward, for the uncached path). The Transformer's cache is its keys and values;
a recurrent model's cache is its state, and such a model sets
`cache_is_positional = False` so that prompts are fed token by token instead of being
prefilled (a state cannot forget the padding of a short prompt).

Prompts of different lengths are right-padded into one [B, N] array (N = longest prompt +
new tokens). The prompts are prefilled in chunks of 16 to 64 positions
(`prefill_chunk_for`), as many as the shortest prompt needs: a loop over one compiled chunk,
so no program per prompt length, and no prefill over the padding and the new tokens'
positions, which at batch 1 would be most of a short call. The token loop then starts at
the shortest prompt's end, and a row still inside its own prompt keeps its prompt token
instead of the sampled one. Cache entries written from padding are overwritten before any
query can attend to them (a query at position t sees keys <= t only), so every row decodes
exactly as if alone.
"""

import operator
import weakref

import numpy as np
import tensorflow as tf

from keras_lm.generation.samplers import sample

_COMPILED = weakref.WeakKeyDictionary()


def prefill_chunk_for(total):
    """Positions per prefill chunk for a [B, total] buffer: total // 4, within [16, 64].

    A chunk reads every weight once and computes all its positions, so small chunks waste
    little on a short prompt (at batch 1 the prefill is a large part of a short call) and
    large ones prefill a long prompt faster (baby GPT, 240-token prompt: 105 ms in chunks
    of 16, 61 ms in chunks of 64, 56 ms in one). The prompt's share of the buffer is
    unknown when the loop is compiled; a buffer much longer than 64 leaves room for a long
    prompt.
    """
    return int(min(64, max(16, total // 4)))


def decode_ids(model, tokens, lengths, temperature, top_k, top_p, seed, stop_token_ids,
               use_cache=True, prefill_chunk=None):
    """Fills `tokens` [B, N] after each row's prompt, one token per step.

    Args:
        model: the language model.
        tokens: int32 [B, N]; row b holds its prompt in [0, lengths[b]), padding after.
            N is the total length (longest prompt + new tokens), at most the context.
        lengths: int32 [B], prompt lengths (>= 1).
        temperature, top_k, top_p: sampler settings (scalars).
        seed: int32 scalar.
        stop_token_ids: int32 [M]; a row stops after emitting one (M may be 0).
        use_cache: bool, use the KV cache (True) or recompute the full prefix (False).
        prefill_chunk: int >= 1, positions per prefill chunk (static: each value compiles
            once), or None for `prefill_chunk_for(N)`. Any value gives the same tokens.

    Returns:
        (tokens int32 [B, N] with the continuations written in and padding after a stop,
         end int32 [B]: the position after each row's last generated token).
    """
    if not model.built:
        model.build()  # create the weights eagerly, never inside the compiled loop
    width = np.shape(tokens)[-1]
    if width > model.sequence_length:
        raise ValueError(
            f"`tokens` is {width} positions wide but the model's context is "
            f"{model.sequence_length} tokens: a position past the context has no embedding. "
            "Shorten the prompts or generate fewer new tokens."
        )
    if prefill_chunk is not None:
        if not isinstance(prefill_chunk, (int, np.integer)) or prefill_chunk < 1:
            raise ValueError(
                f"`prefill_chunk` must be an int >= 1 or None. Received: {prefill_chunk!r}"
            )
        prefill_chunk = int(prefill_chunk)
    args = (
        tf.convert_to_tensor(tokens, tf.int32),
        tf.convert_to_tensor(lengths, tf.int32),
        tf.convert_to_tensor(temperature, tf.float32),
        tf.convert_to_tensor(top_k, tf.int32),
        tf.convert_to_tensor(top_p, tf.float32),
        tf.convert_to_tensor(seed, tf.int32),
        tf.convert_to_tensor(stop_token_ids, tf.int32),
    )
    # One concrete function per static setting and shape, called directly: dispatching
    # through `tf.function` (matching the call against its signatures) costs more than a
    # whole decoding step of a small model.
    key = (use_cache, prefill_chunk) + tuple(tuple(a.shape) for a in args)
    fns = _COMPILED.setdefault(model, {})
    if key not in fns:
        fns[key] = tf.function(
            lambda *a: _decode_loop(model, *a, use_cache=use_cache, prefill_chunk=prefill_chunk),
            jit_compile=True,
        ).get_concrete_function(*args)
    return fns[key](*args)


def _decode_loop(model, tokens, lengths, temperature, top_k, top_p, seed, stop_ids, use_cache,
                 prefill_chunk=None):
    """The decoding loop of `decode_ids` (traced; shapes as there; N must be static)."""
    batch, total = tf.shape(tokens)[0], tf.shape(tokens)[1]
    start = tf.reduce_min(lengths)

    def logits_at(all_logits, index):  # (B, T, V) -> (B, V) at position `index`
        return tf.gather(all_logits, index, axis=1)

    if use_cache and getattr(model, "cache_is_positional", True):
        # Attention caches are addressed by position: prefill [0, start) in chunks.
        cache = model.init_cache(batch, tokens.shape[1])
        chunk = prefill_chunk_for(tokens.shape[1]) if prefill_chunk is None else prefill_chunk
        cache, next_logits = _prefill(model, tokens, cache, start, chunk)
    elif use_cache:
        # A recurrent state cannot un-read padding: feed prompts token by token from 0.
        start = tf.constant(1, tf.int32)
        cache = model.init_cache(batch, tokens.shape[1])
        first_logits, cache = model.call_with_cache(tokens[:, :1], cache, 0)
        next_logits = first_logits[:, 0]
    else:
        next_logits = logits_at(model(tokens, training=False), start - 1)
        cache = ()
    cache = tuple(tf.convert_to_tensor(c) for c in cache)
    next_logits = tf.cast(next_logits, tf.float32)
    done = tf.zeros([batch], tf.bool)
    end = tf.fill([batch], total)

    def condition(t, tokens, next_logits, cache, done, end):
        return tf.logical_and(t < total, tf.logical_not(tf.reduce_all(done)))

    def body(t, tokens, next_logits, cache, done, end):
        step_seed = tf.stack([seed, t])
        sampled = sample(next_logits, temperature, top_k, top_p, step_seed)
        in_prompt = t < lengths
        token = tf.where(in_prompt, tokens[:, t], sampled)
        token = tf.where(done, tf.zeros_like(token), token)
        is_stop = tf.reduce_any(tf.equal(token[:, None], stop_ids[None, :]), axis=-1)
        newly_done = tf.logical_and(tf.logical_and(is_stop, ~in_prompt), ~done)
        end = tf.where(newly_done, t + 1, end)
        done = tf.logical_or(done, newly_done)
        tokens = _set_column(tokens, t, token)
        if use_cache:
            logits, cache = model.call_with_cache(token[:, None], cache, t)
            next_logits = tf.cast(logits[:, 0], tf.float32)
        else:
            logits = model(tokens, training=False)
            next_logits = tf.cast(logits_at(logits, t), tf.float32)
        return t + 1, tokens, next_logits, tuple(tf.convert_to_tensor(c) for c in cache), done, end

    _, tokens, _, _, _, end = tf.while_loop(
        condition, body, (start, tokens, next_logits, cache, done, end),
        maximum_iterations=total,
    )
    return tokens, end


def _prefill(model, tokens, cache, start, chunk):
    """Writes the cache for positions [0, start) in chunks of `chunk` positions.

    Chunk i covers [b_i, b_i + C) with b_i = max(0, min(i C, start - C)) and
    C = min(chunk, N): the last chunk ends at max(start, C), so it holds position start - 1,
    whose logits come back, and no chunk runs past N. A chunk overlapping the previous one
    recomputes the same entries; entries past `start` are rewritten by the token loop.

    Returns:
        (cache, float32 logits [B, V] at position start - 1).
    """
    chunk = min(chunk, tokens.shape[1])
    count = (start + chunk - 1) // chunk  # >= 1: start >= 1

    def body(i, cache, _):
        begin = tf.maximum(0, tf.minimum(i * chunk, start - chunk))
        window = tf.gather(tokens, begin + tf.range(chunk), axis=1)  # (B, C)
        logits, cache = model.call_with_cache(window, cache, begin)
        # Position start - 1 is in the last chunk; earlier chunks' values are overwritten.
        last = tf.gather(logits, tf.minimum(start - 1 - begin, chunk - 1), axis=1)  # (B, V)
        return i + 1, tuple(tf.convert_to_tensor(c) for c in cache), tf.cast(last, tf.float32)

    batch = tf.shape(tokens)[0]
    logits = tf.zeros([batch, model.vocabulary_size], tf.float32)
    _, cache, logits = tf.while_loop(
        lambda i, *_: i < count, body,
        (tf.constant(0, tf.int32), tuple(tf.convert_to_tensor(c) for c in cache), logits),
    )
    return cache, logits


def _set_column(tokens, t, column):
    """tokens[:, t] = column, as an XLA-friendly dynamic update."""
    hit = tf.equal(tf.range(tf.shape(tokens)[1]), t)[None, :]  # (1, N)
    return tf.where(hit, column[:, None], tokens)


def generate(
    model,
    prompts,
    max_new_tokens=64,
    tokenizer=None,
    temperature=0.0,
    top_k=0,
    top_p=1.0,
    seed=None,
    stop_token_ids=None,
    stop_strings=None,
    truncate=False,
    use_cache=True,
):
    """Continues each prompt by up to `max_new_tokens` tokens.

    Args:
        model: a keras_lm language model (e.g. `DecoderLM`).
        prompts: str, list of str (needs `tokenizer`), or a list of token-id lists.
        max_new_tokens: int >= 1; the prompt plus new tokens must fit the context.
        tokenizer: a keras_lm tokenizer whose `vocabulary_size` equals the model's.
        temperature: float >= 0; 0 for greedy decoding, else the softmax temperature.
        top_k: int >= 0; keep only the k most likely tokens (0: off).
        top_p: float in (0, 1]; nucleus sampling mass (1.0: off).
        seed: int in [-2**31, 2**31); the same seed gives the same samples, for a prompt
            alone or in any batch. None draws one.
        stop_token_ids: ids that end a row (emitted token not included in the output);
            defaults to the tokenizer's `eos_id` (none if it has none).
        stop_strings: a str or list of str that end a row's text (cut before the first
            occurrence); needs a `tokenizer`.
        truncate: if a prompt is too long for the context, keep its last tokens instead of
            raising.
        use_cache: decode with the KV cache (default) or recompute every prefix.

    Returns:
        The continuations: a str (for one str prompt), a list of str (with a tokenizer),
        or lists of token ids.

    Raises:
        ValueError: empty input, a prompt too long for the context (without `truncate`),
            `max_new_tokens` or a sampler setting out of range, a tokenizer that does not
            match the model, `stop_strings` without a tokenizer.
    """
    _check_sampler_settings(temperature, top_k, top_p, seed)
    single = isinstance(prompts, str)
    if single:
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError("`prompts` is empty: pass at least one prompt.")
    if isinstance(prompts[0], (int, np.integer)):
        raise ValueError(
            "`prompts` is a flat list of token ids; pass a list of prompts, each a list of "
            f"ids (e.g. [{list(prompts[:3])}]), or a str / list of str with a `tokenizer`."
        )
    if isinstance(stop_strings, str):
        stop_strings = [stop_strings]
    if stop_strings and tokenizer is None:
        raise ValueError(
            "`stop_strings` needs a `tokenizer` (they cut the detokenized text). For token-id "
            "prompts without one, use `stop_token_ids`."
        )
    if tokenizer is not None and tokenizer.vocabulary_size != model.vocabulary_size:
        raise ValueError(
            f"The tokenizer's vocabulary ({tokenizer.vocabulary_size} tokens) does not match "
            f"the model's ({model.vocabulary_size}). Use the tokenizer saved with the model "
            "(its workdir's tokenizer/ directory)."
        )
    texts_in = isinstance(prompts[0], str)
    if texts_in:
        if tokenizer is None:
            raise ValueError("Text prompts need a `tokenizer`; or pass lists of token ids.")
        ids = [list(np.asarray(tokenizer.tokenize(p)).tolist()) for p in prompts]
    else:
        ids = [[_token_id(t, i) for t in p] for i, p in enumerate(prompts)]
    start_id = tokenizer.eos_id if tokenizer is not None else None
    for i, row in enumerate(ids):
        if not row:
            if start_id is None:
                raise ValueError(
                    f"Prompt {i} is empty; give at least one token"
                    + (" (the tokenizer has no end-of-text id to start a document with)."
                       if tokenizer is not None else " id.")
                )
            ids[i] = [start_id]  # an empty prompt starts a new document
        bad = [t for t in ids[i] if not 0 <= t < model.vocabulary_size]
        if bad:
            raise ValueError(
                f"Prompt {i} has token ids outside the model's vocabulary "
                f"[0, {model.vocabulary_size}): {bad[:5]}"
            )

    context = model.sequence_length
    if not isinstance(max_new_tokens, (int, np.integer)) or not 1 <= max_new_tokens < context:
        raise ValueError(
            f"`max_new_tokens` must be an int in [1, {context - 1}] (the context is {context} "
            f"tokens and a prompt needs at least one). Received: max_new_tokens={max_new_tokens}"
        )
    room = context - max_new_tokens
    longest = max(len(row) for row in ids)
    if longest > room:
        if not truncate:
            raise ValueError(
                f"A prompt of {longest} tokens plus max_new_tokens={max_new_tokens} exceeds the "
                f"model's context of {context} tokens. Shorten the prompt, lower "
                "max_new_tokens, or pass truncate=True (keeps the last "
                f"{room} prompt tokens)."
            )
        ids = [row[-room:] for row in ids]
        longest = room

    lengths = np.array([len(row) for row in ids], np.int32)
    total = longest + max_new_tokens
    tokens = np.zeros((len(ids), total), np.int32)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = row
    if stop_token_ids is None:
        stop_token_ids = [start_id] if start_id is not None else []
    if seed is None:
        seed = int(np.random.default_rng().integers(0, 2**31 - 1))

    out, end = decode_ids(model, tokens, lengths, temperature, top_k, top_p, seed,
                          np.asarray(list(stop_token_ids), np.int32).reshape(-1), use_cache)
    out, end = np.asarray(out), np.asarray(end)
    stop_set = set(int(s) for s in stop_token_ids)
    results = []
    for i, length in enumerate(lengths):
        row = out[i, length: min(end[i], length + max_new_tokens)].tolist()
        if row and row[-1] in stop_set:
            row = row[:-1]
        results.append(row)
    if not texts_in and tokenizer is None:
        return results
    texts = [_detokenize(tokenizer, row) for row in results]
    for stop in stop_strings or ():
        texts = [t.split(stop, 1)[0] for t in texts]
    if texts_in or tokenizer is not None:
        return texts[0] if single else texts
    return results


def _token_id(value, prompt_index):
    """An int token id; a float (1.7) is an error, not truncated onto another id."""
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(
            f"Prompt {prompt_index} holds {value!r} ({type(value).__name__}): token ids must be "
            "ints. Tokenize text with the model's tokenizer, or pass the text with "
            "`tokenizer=`."
        ) from None


def _check_sampler_settings(temperature, top_k, top_p, seed):
    """Raises a ValueError naming the first sampler setting out of range."""
    if isinstance(temperature, bool) or not isinstance(
        temperature, (int, float, np.integer, np.floating)
    ) or not temperature >= 0:
        raise ValueError(
            "`temperature` must be a number >= 0 (0: greedy decoding). "
            f"Received: temperature={temperature!r}"
        )
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ValueError(f"`top_k` must be an int >= 0 (0: off). Received: top_k={top_k!r}")
    if isinstance(top_p, bool) or not isinstance(
        top_p, (int, float, np.integer, np.floating)
    ) or not 0 < top_p <= 1:
        raise ValueError(
            "`top_p` must be a number in (0, 1] (1: off; the nucleus always keeps the most "
            f"likely token). Received: top_p={top_p!r}"
        )
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
        or not -(2**31) <= seed < 2**31
    ):
        raise ValueError(
            f"`seed` must be None or an int in [-2**31, 2**31) (a 32-bit seed). Received: "
            f"seed={seed!r}"
        )


def _detokenize(tokenizer, ids):
    text = tokenizer.detokenize(tf.constant(ids, tf.int32))
    return np.asarray(text).item().decode("utf-8", errors="replace")
