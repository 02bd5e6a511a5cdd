"""Decoding for encoder-decoder models: greedy / sampling loop and the text-level `generate`.

The model protocol is the one of `keras_lm.generation.beam_search` (`decoding_state`,
`init_cache`, `call_with_cache`, `decode`). `decode_ids` runs the encoder once, then one
target token a step in one XLA-compiled `tf.while_loop`, with the decoder's self-attention
cache (or, with `use_cache=False`, the whole prefix recomputed each step: same tokens).

Source and target conventions (the same as `keras_lm.data.seq2seq`): the encoder reads the
source ids followed by the source tokenizer's `eos_id`; the decoder starts from the target
tokenizer's `bos_id` and a hypothesis ends at its `eos_id`.
"""

import weakref

import numpy as np
import tensorflow as tf

from keras_lm.generation.beam_search import beam_search
from keras_lm.generation.decoding import _check_sampler_settings
from keras_lm.generation.samplers import sample

_COMPILED = weakref.WeakKeyDictionary()
_STOP_SLOTS = 4


def decode_ids(model, encoder_token_ids, max_length, bos_id, stop_token_ids, temperature=0.0,
               top_k=0, top_p=1.0, seed=0, use_cache=True, jit_compile=True):
    """Greedy or sampled decoding of a batch of sources.

    Args:
        model: an encoder-decoder model (see the module docstring).
        encoder_token_ids: int [B, S], padded with 0.
        max_length: int N >= 1, most generated tokens.
        bos_id: int, the first decoder input.
        stop_token_ids: ints; a row stops after emitting one (it is kept in the output).
        temperature, top_k, top_p: sampler settings (`keras_lm.generation.sample`); 0 is greedy.
        seed: int, the stateless sampling seed.
        use_cache: decode with the self-attention cache (default) or recompute every prefix.
        jit_compile: compile the loop with XLA (default) or run it as a TF graph (faster to
            compile: tests).

    Returns:
        (tokens int32 [B, N] with 0 after a row's stop token, lengths int32 [B]: generated
        tokens per row, its stop token included).
    """
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or (
        max_length < 1
    ):
        raise ValueError(f"`max_length` must be an int >= 1. Received: max_length={max_length!r}")
    if hasattr(model, "built") and not model.built:
        model.build()  # create the weights eagerly, never inside the compiled loop
    key = (bool(use_cache), int(max_length), bool(jit_compile))
    fns = _COMPILED.setdefault(model, {})
    if key not in fns:
        fns[key] = tf.function(
            lambda *args: _decode_loop(model, *args, max_length=key[1], use_cache=key[0]),
            jit_compile=key[2],
        )
    stop_token_ids = [int(i) for i in stop_token_ids]
    # A fixed-size stop list (padded with -1, which no token equals) keeps one compiled loop
    # for any number of stop tokens.
    stop_ids = np.full(max(_STOP_SLOTS, len(stop_token_ids)), -1, np.int32)
    stop_ids[: len(stop_token_ids)] = stop_token_ids
    tokens, lengths = fns[key](
        tf.convert_to_tensor(np.asarray(encoder_token_ids), tf.int32),
        tf.constant(bos_id, tf.int32),
        tf.constant(stop_ids),
        tf.constant(temperature, tf.float32),
        tf.constant(top_k, tf.int32),
        tf.constant(top_p, tf.float32),
        tf.constant(seed, tf.int32),
    )
    return np.asarray(tokens), np.asarray(lengths)


def _decode_loop(model, encoder_token_ids, bos_id, stop_ids, temperature, top_k, top_p, seed,
                 max_length, use_cache):
    n = max_length
    batch = tf.shape(encoder_token_ids)[0]
    state = tuple(model.decoding_state(encoder_token_ids))  # the encoder runs once
    tokens = tf.concat([tf.fill([batch, 1], bos_id), tf.zeros([batch, n], tf.int32)], axis=1)
    cache = tuple(tf.convert_to_tensor(c) for c in model.init_cache(batch, n)) if use_cache else ()
    done = tf.zeros([batch], tf.bool)
    lengths = tf.fill([batch], n)

    def condition(t, tokens, cache, done, lengths):
        return tf.logical_and(t < n, tf.logical_not(tf.reduce_all(done)))

    def body(t, tokens, cache, done, lengths):
        if use_cache:
            logits, cache = model.call_with_cache(tf.gather(tokens, [t], axis=1), cache, t,
                                                  *state)
            logits = logits[:, 0]
            cache = tuple(tf.convert_to_tensor(c) for c in cache)
        else:
            logits = tf.gather(model.decode(tokens[:, :n], *state), t, axis=1)  # (B, V)
        token = sample(tf.cast(logits, tf.float32), temperature, top_k, top_p,
                       tf.stack([seed, t]))
        token = tf.where(done, tf.zeros_like(token), token)
        is_stop = tf.reduce_any(tf.equal(token[:, None], stop_ids[None, :]), axis=-1)
        newly_done = tf.logical_and(is_stop, tf.logical_not(done))
        lengths = tf.where(newly_done, t + 1, lengths)
        done = tf.logical_or(done, newly_done)
        hit = tf.equal(tf.range(n + 1), t + 1)[None, :]
        tokens = tf.where(hit, token[:, None], tokens)  # tokens[:, t + 1] = token
        return t + 1, tokens, cache, done, lengths

    _, tokens, _, _, lengths = tf.while_loop(
        condition, body, (tf.constant(0), tokens, cache, done, lengths), maximum_iterations=n
    )
    return tokens[:, 1:], lengths


def encode_sources(texts_or_ids, tokenizer, sequence_length, truncate=False):
    """Source ids + eos, right-padded with 0 to [B, sequence_length].

    Id rows may carry trailing padding (id 0, e.g. the rows of a padded array): it is dropped
    before eos is appended, so a padded row encodes as the unpadded one.

    Args:
        texts_or_ids: list of str (needs `tokenizer`) or lists of ids (eos is appended).
        tokenizer: the source tokenizer, or None for ids (then eos must be in the ids).
        sequence_length: int, the model's longest source.
        truncate: cut long sources (keeping eos) instead of raising.

    Returns:
        int32 [B, sequence_length].

    Raises:
        ValueError: text without a tokenizer, a tokenizer without `eos_id`, an empty id row
            without a tokenizer (it would leave the encoder nothing to attend to), a source
            too long (unless `truncate`).
    """
    texts_or_ids = list(texts_or_ids)
    texts = [item for item in texts_or_ids if isinstance(item, str)]
    if texts and tokenizer is None:
        raise ValueError("Text inputs need a `tokenizer`; or pass lists of token ids.")
    if tokenizer is not None and tokenizer.eos_id is None:
        raise ValueError(
            f"The source tokenizer ({type(tokenizer).__name__}) has no `eos_id`, which ends "
            "every source of an encoder-decoder model. Use a tokenizer with an "
            "end-of-sequence token (SentencePieceTokenizer.train gives one)."
        )
    tokenized = iter(tokenizer.tokenize(texts).to_list() if texts else [])  # one batched op
    rows = []
    for index, item in enumerate(texts_or_ids):
        if isinstance(item, str):
            row = list(next(tokenized)) + [tokenizer.eos_id]
        else:
            row = [int(i) for i in np.asarray(item).reshape(-1)]
            while row and row[-1] == 0:  # trailing padding
                row.pop()
            if tokenizer is not None:
                row = row + [tokenizer.eos_id]
            elif not row:
                raise ValueError(
                    f"Input {index} is an empty source (no ids besides padding 0): the encoder "
                    "would have nothing to attend to. Id inputs without a tokenizer must end "
                    "with the source end-of-sequence id; pass `tokenizer=` to have it appended."
                )
        if len(row) > sequence_length:
            if not truncate:
                raise ValueError(
                    f"Input {index} has {len(row)} source tokens (end-of-sequence included), "
                    f"more than the model's sequence_length={sequence_length}. Shorten it or "
                    "pass truncate=True."
                )
            row = row[: sequence_length - 1] + row[-1:]
        rows.append(row)
    ids = np.zeros((len(rows), sequence_length), np.int32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return ids


def generate(
    model,
    inputs,
    tokenizer=None,
    target_tokenizer=None,
    max_length=None,
    beam_size=1,
    length_penalty=0.0,
    temperature=0.0,
    top_k=0,
    top_p=1.0,
    seed=0,
    use_cache=True,
    truncate=False,
    return_scores=False,
    bos_id=None,
    eos_id=None,
    jit_compile=True,
):
    """Transduces sources into targets with greedy decoding, sampling or beam search.

    Args:
        model: a `Seq2SeqTransformer` (or any model of the decoding protocol with
            `sequence_length` and `target_sequence_length`).
        inputs: a str or list of str (needs `tokenizer`), or lists of source ids.
        tokenizer: the source tokenizer; also the target one unless `target_tokenizer`.
        target_tokenizer: the target tokenizer of a model with separate vocabularies.
        max_length: int, most target tokens (default and upper bound: the model's
            `target_sequence_length`).
        beam_size: 1 for greedy decoding / sampling, K > 1 for beam search.
        length_penalty: alpha of the beam search score `log P / ((5 + n) / 6) ** alpha`.
        temperature, top_k, top_p: sampling (beam_size=1 only); temperature 0 is greedy.
        seed: int, the sampling seed (None: a random one).
        use_cache: decode with the self-attention cache (default) or recompute every prefix.
        truncate: cut sources longer than the model's `sequence_length` instead of raising.
        return_scores: also return the beam scores of the outputs (beam search only).
        bos_id, eos_id: target special ids, for id inputs without a tokenizer.
        jit_compile: compile the decoding loop with XLA (default) or run it as a TF graph.

    Returns:
        The outputs, without the end-of-sequence token: a str for one str input, a list of str
        with a tokenizer, else lists of ids; with `return_scores`, `(outputs, scores)`.

    Raises:
        ValueError: empty inputs (or an empty id source), a source too long, a bad
            `max_length` / `beam_size` / sampler setting / `bos_id` / `eos_id`, sampling
            options with beam search, a tokenizer that does not match the model or lacks
            bos / eos.

    Example:
    >>> generate(model, "long liue the king", tokenizer=tokenizer, beam_size=4)  # doctest: +SKIP
    'long live the king'
    """
    single = isinstance(inputs, str)
    inputs = [inputs] if single else list(inputs)
    if not inputs:
        raise ValueError("`inputs` is empty: pass at least one source.")
    target_tokenizer = target_tokenizer or tokenizer
    if tokenizer is not None and tokenizer.vocabulary_size != model.vocabulary_size:
        raise ValueError(
            f"The tokenizer's vocabulary ({tokenizer.vocabulary_size} tokens) does not match the "
            f"model's source vocabulary ({model.vocabulary_size}). Use the tokenizer saved with "
            "the model (its workdir's tokenizer/ directory)."
        )
    output_size = getattr(model, "output_vocabulary_size", model.vocabulary_size)
    if target_tokenizer is not None and target_tokenizer.vocabulary_size != output_size:
        raise ValueError(
            f"The target tokenizer's vocabulary ({target_tokenizer.vocabulary_size}) does not "
            f"match the model's target vocabulary ({output_size})."
        )
    if target_tokenizer is not None:
        bos_id, eos_id = target_tokenizer.bos_id, target_tokenizer.eos_id
        if bos_id is None or eos_id is None:
            raise ValueError(
                f"The target tokenizer ({type(target_tokenizer).__name__}) has bos_id={bos_id} "
                f"and eos_id={eos_id}: decoding starts from bos and stops at eos. Use a "
                "tokenizer with both (SentencePieceTokenizer.train gives them)."
            )
    if bos_id is None or eos_id is None:
        raise ValueError("Id inputs without a tokenizer need `bos_id` and `eos_id`.")
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
            0 <= value < output_size
        ):
            raise ValueError(
                f"`{name}` must be an int in [0, {output_size}) (the model's target "
                f"vocabulary). Received: {name}={value!r}"
            )
    longest = model.target_sequence_length
    max_length = longest if max_length is None else max_length
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or not (
        1 <= max_length <= longest
    ):
        raise ValueError(
            f"`max_length` must be an int in [1, {longest}] (the model's "
            f"target_sequence_length). Received: max_length={max_length!r}"
        )
    if isinstance(beam_size, bool) or not isinstance(beam_size, (int, np.integer)) or (
        beam_size < 1
    ):
        raise ValueError(f"`beam_size` must be an int >= 1. Received: beam_size={beam_size!r}")
    _check_sampler_settings(temperature, top_k, top_p, seed)
    if seed is None:
        seed = int(np.random.default_rng().integers(0, 2**31 - 1))
    if (beam_size > 1 or return_scores) and (temperature > 0 or top_k or top_p < 1.0):
        raise ValueError(
            "Beam search (also used for `return_scores`) is deterministic: temperature, top_k "
            f"and top_p apply to sampling (beam_size=1). Received: beam_size={beam_size}, "
            f"return_scores={return_scores}, temperature={temperature}, top_k={top_k}, "
            f"top_p={top_p}"
        )
    source_ids = encode_sources(inputs, tokenizer, model.sequence_length, truncate)
    bad = source_ids[(source_ids < 0) | (source_ids >= model.vocabulary_size)]
    if bad.size:
        raise ValueError(
            f"Source ids outside the model's vocabulary [0, {model.vocabulary_size}): "
            f"{bad[:5].tolist()}"
        )

    scores = None
    if beam_size > 1 or return_scores:
        out = beam_search(model, source_ids, max_length, beam_size, length_penalty,
                          bos_id=bos_id, eos_id=eos_id, use_cache=use_cache,
                          jit_compile=jit_compile)
        rows = [out.sequences[i, 0, : out.lengths[i, 0]].tolist() for i in range(len(inputs))]
        scores = out.scores[:, 0].tolist()
    else:
        tokens, lengths = decode_ids(model, source_ids, max_length, bos_id, [eos_id],
                                     temperature, top_k, top_p, seed, use_cache, jit_compile)
        rows = [tokens[i, : lengths[i]].tolist() for i in range(len(inputs))]
    rows = [row[:-1] if row and row[-1] == eos_id else row for row in rows]
    if target_tokenizer is not None:
        outputs = _detokenize(target_tokenizer, rows)
    else:
        outputs = rows
    if single:
        outputs = outputs[0]
        scores = None if scores is None else scores[0]
    return (outputs, scores) if return_scores else outputs


def _detokenize(tokenizer, rows):
    """Lists of ids -> list of str, in one batched op."""
    ragged = tf.RaggedTensor.from_row_lengths(
        tf.constant([i for row in rows for i in row], tf.int32),
        tf.constant([len(row) for row in rows], tf.int64),
    )
    texts = np.asarray(tokenizer.detokenize(ragged))
    return [text.decode("utf-8", errors="replace") for text in texts]
