"""SavedModel endpoints of an n-gram LM (`NGramLM`): strings in, strings and scores out.

The model is not a Keras model but a set of backoff tables (`keras_lm.models.ngram_backoff`);
the graph holds them as variables and queries them with the same backoff rule, in float64,
with core TensorFlow ops only (`LowerBound` binary search, gathers, `TopKV2`,
`StatelessMultinomial`), so a stock TF Serving binary runs the export of a char or byte
tokenizer's n-gram.
"""

import numpy as np
import tensorflow as tf

from keras_lm.export.batching import keep_last
from keras_lm.export.text_generation import STRINGS
from keras_lm.export.text_generation import generated_texts
from keras_lm.export.text_generation import generation_functions
from keras_lm.export.text_generation import generation_signatures

# The most tokens one request may generate. The n-gram has no context limit, so this bounds
# a request's time and memory instead (B rows x V tokens x N orders of lookups per step).
MAX_NEW_TOKENS_LIMIT = 4096
# Appended to every order's sorted keys: a binary search then always lands on a valid row,
# which matches no query (keys are row * V + id < S * V, far below it).
_SENTINEL = np.iinfo(np.int64).max


class NGramModule(tf.Module):
    """The serving signatures of an n-gram LM (`keras_lm.models.NGramLM`).

    The same signatures as `CausalLMModule` (`keras_lm/export/causal_lm_module.py`), every
    one taking `tf.string` [B] texts (any B, empty strings allowed):

        generate(prompts) -> texts, token_counts          (= serving_default)
        generate_with_options(prompts, max_new_tokens, temperature, top_k, top_p, seed)
            -> texts, token_counts
        score(texts) -> log_likelihood, token_counts

    Conventions are the n-gram's own, those of `keras-lm evaluate` and `keras-lm generate`
    on an n-gram workdir:
    - a text is one document: the model reads [BOS] * (N-1) + text and predicts every token
      of the text, then EOS. `score` gives the summed natural-log probability (nats, float32)
      and the number of predicted tokens, len(text) + 1, i.e. `NGramLM.token_log_probs`
      summed (perplexity = exp(-log_likelihood / token_counts)). A text holding the
      tokenizer's BOS id scores -inf (`NGramLM.score` refuses it).
    - a prompt is the start of a document: an empty prompt starts a new one, a long prompt
      is fine (only its last N-1 tokens matter). `texts` are the continuations, stopped at
      (and without) EOS, invalid UTF-8 replaced by U+FFFD; `token_counts` their lengths.

    Decoding: a `tf.while_loop` computes, each step, ln P(. | last N-1 tokens) over the whole
    vocabulary from the tables (float64, exactly `NGramLM.next_token_distribution`'s values),
    and picks a token:
    - `temperature` <= 0: greedy, the most likely token, lowest id on ties, as
      `NGramLM.generate(..., temperature=0)` (so greedy text equals `keras-lm generate
      --temperature=0`);
    - otherwise sampling from P^(1/temperature) renormalised (as `NGramLM.generate`), among
      the `top_k` most likely tokens (<= 0: all; ties ranked by lowest id, so top_k=1 is
      greedy) and the smallest set of those with mass >= `top_p` (nucleus; 1 keeps all,
      <= 0 only the most likely). The draw is TensorFlow's stateless sampler seeded by
      (seed, step): the same seed gives the same text, but not `NGramLM.generate`'s numpy
      draw.
    `max_new_tokens` is clamped to [1, `MAX_NEW_TOKENS_LIMIT`] (4096): the n-gram has no
    context limit, so the clamp bounds a request's work. The loop ends when every row has
    produced EOS or `max_new_tokens` tokens.

    Shape letters: B batch, N order, H = N-1 history, V vocabulary, S_k stored k-grams,
    P predicted tokens of a batch.

    Args:
        model: a fitted `NGramLM`.
        tokenizer: the keras_lm tokenizer the model was counted with (same vocabulary size,
            BOS and EOS ids).
        max_new_tokens: int, default of the `generate` signature (clamped as above).
        temperature: float, default (0: greedy).
        top_k: int, default (0: off).
        top_p: float, default (1.0: off).
        seed: int, default sampling seed.

    Example:
    >>> module = NGramModule(ngram, tokenizer, max_new_tokens=32)
    >>> tf.saved_model.save(module, path, signatures=module.signatures())
    >>> tf.saved_model.load(path).signatures["score"](texts=tf.constant(["To be"]))
    """

    main_signature = "generate"

    def __init__(self, model, tokenizer, max_new_tokens=64, temperature=0.0, top_k=0,
                 top_p=1.0, seed=0):
        super().__init__(name="keras_lm_ngram_lm")
        keys, log_prob, log_backoff = _fitted_tables(model)
        vocabulary_size = int(model.vocabulary_size)
        if tokenizer.vocabulary_size != vocabulary_size:
            raise ValueError(
                f"The tokenizer's vocabulary ({tokenizer.vocabulary_size} tokens) does not "
                f"match the n-gram model's ({vocabulary_size}). Export the tokenizer saved "
                "with the model (its workdir's tokenizer/ directory)."
            )
        for name in ("bos_id", "eos_id"):
            if getattr(tokenizer, name) != getattr(model, name):
                raise ValueError(
                    f"The tokenizer's {name}={getattr(tokenizer, name)} differs from the "
                    f"n-gram model's {name}={getattr(model, name)}: it was counted with "
                    "another tokenizer. Export the tokenizer saved with the model."
                )
        if not np.array_equal(keys[0], np.arange(vocabulary_size)):
            raise ValueError("The n-gram model's 1-gram table must hold every id 0..V-1 in "
                             "order; refit or reload the model (NGramLM.load).")
        self.order = int(model.order)
        self.vocabulary_size = vocabulary_size
        self.defaults = {
            "max_new_tokens": max(1, min(int(max_new_tokens), MAX_NEW_TOKENS_LIMIT)),
            "temperature": float(temperature),
            "top_k": int(top_k),
            "top_p": float(top_p),
            "seed": int(seed),
        }
        self._model_config = {
            "order": self.order,
            "vocabulary_size": vocabulary_size,
            "bos_id": int(model.bos_id),
            "eos_id": int(model.eos_id),
            "unk_id": None if model.unk_id is None else int(model.unk_id),
            "ngram_counts": [int(k.size) for k in keys],
            "discounts": None if model.discounts is None else np.asarray(model.discounts).tolist(),
        }
        # Tracked state: the tables as variables (saved under variables/, not in the graph)
        # and the tokenizer's tables. Each order's arrays get the sentinel row at the end.
        self.keys = [_variable(np.append(k, _SENTINEL).astype(np.int64), f"keys_{i + 1}")
                     for i, k in enumerate(keys)]
        self.log_prob = [_variable(np.append(p, 0.0), f"log_prob_{i + 1}")
                         for i, p in enumerate(log_prob)]
        self.log_backoff = [_variable(np.append(b, 0.0), f"log_backoff_{i + 1}")
                            for i, b in enumerate(log_backoff)]
        self.tokenizer = tokenizer
        bos_id, eos_id, history = int(model.bos_id), int(model.eos_id), self.order - 1

        def generate_texts(prompts, max_new_tokens, temperature, top_k, top_p, seed):
            max_new_tokens = tf.clip_by_value(tf.cast(max_new_tokens, tf.int32), 1,
                                              MAX_NEW_TOKENS_LIMIT)
            ids = tf.cast(tokenizer.tokenize(prompts), tf.int64)  # (B, None) ragged
            padding = tf.fill([ids.nrows(), history], tf.constant(bos_id, tf.int64))
            padded = tf.concat([tf.RaggedTensor.from_tensor(padding), ids], axis=1)
            context = keep_last(padded, history).to_tensor(shape=[None, history])  # (B, H)
            new_ids = self._decode(context, max_new_tokens, tf.cast(temperature, tf.float64),
                                   tf.cast(top_k, tf.int32), tf.cast(top_p, tf.float64),
                                   tf.cast(seed, tf.int32), eos_id)
            return generated_texts(tokenizer, new_ids)

        generate, generate_with_options = generation_functions(generate_texts, self.defaults)

        @tf.function(input_signature=[STRINGS])
        def score(texts):
            ids = tf.cast(tokenizer.tokenize(texts), tf.int64)  # (B, None) ragged
            batch = ids.nrows()
            padding = tf.fill([batch, history], tf.constant(bos_id, tf.int64))
            end = tf.fill([batch, 1], tf.constant(eos_id, tf.int64))
            sequence = tf.concat([tf.RaggedTensor.from_tensor(padding), ids,
                                  tf.RaggedTensor.from_tensor(end)], axis=1)  # (B, H+L_b+1)
            counts = ids.row_lengths() + 1  # (B,) predicted: the text's tokens, then EOS
            first = sequence.row_starts() + history  # flat index of each text's first token
            positions = tf.ragged.range(first, first + counts).flat_values  # (P,)
            contexts = tf.gather(sequence.flat_values,
                                 positions[:, None] + tf.range(-history, 0, dtype=tf.int64))
            words = tf.gather(sequence.flat_values, positions)[:, None]  # (P, 1)
            log_probs = self._log_probs(contexts, words)[:, 0]  # (P,) float64
            totals = tf.reduce_sum(tf.RaggedTensor.from_row_lengths(log_probs, counts), axis=1)
            return {"log_likelihood": tf.cast(totals, tf.float32),
                    "token_counts": tf.cast(counts, tf.int32)}

        self.generate = generate
        self.generate_with_options = generate_with_options
        self.score = score

    def _lookup(self, k, query):
        """(found bool, rows int64) of int64 `query` (any shape) in order k's sorted keys."""
        keys = self.keys[k - 1]
        flat = tf.reshape(query, [1, -1])
        rows = tf.reshape(tf.searchsorted(keys[None, :], flat, out_type=tf.int64),
                          tf.shape(query))
        return tf.equal(tf.gather(keys, rows), query), rows

    def _log_probs(self, contexts, words):
        """ln P(word | context), `ngram_backoff.backoff_log_probs` in TensorFlow.

        Args:
            contexts: int64 [M, H], the last N-1 ids before the words (BOS-padded).
            words: int64 [M or 1, W], the words scored after each context.

        Returns:
            float64 [M, W] (-inf for BOS). The same float64 operations, in the same order,
            as the numpy scorer, so the values are equal.
        """
        vocabulary_size, history = self.vocabulary_size, self.order - 1
        words = tf.broadcast_to(words, tf.stack([tf.shape(contexts)[0], tf.shape(words)[1]]))
        result = tf.gather(self.log_prob[0], words)  # (M, W)
        if self.order == 1:
            return result
        word_found = tf.ones_like(words, tf.bool)
        word_rows = words
        context_found = tf.ones_like(contexts[:, 0], tf.bool)  # (M,)
        context_rows = contexts[:, -1]  # the row of the length-1 context suffix is its id
        for k in range(2, self.order + 1):
            backoff = tf.where(context_found, tf.gather(self.log_backoff[k - 2], context_rows),
                               tf.constant(0.0, tf.float64))  # (M,)
            # The k-gram c_{N-k+1} .. c_{N-1} w: keyed by its first id and its suffix's row.
            found, word_rows = self._lookup(
                k, word_rows * vocabulary_size + contexts[:, history - (k - 1), None])
            word_found &= found
            stored = tf.gather(self.log_prob[k - 1], word_rows)
            result = tf.where(word_found, stored, backoff[:, None] + result)
            if k < self.order:  # extend the context suffix to length k
                found, context_rows = self._lookup(
                    k, context_rows * vocabulary_size + contexts[:, history - k])
                context_found &= found
        return result

    def _decode(self, context, max_new_tokens, temperature, top_k, top_p, seed, eos_id):
        """New ids after each context, until EOS (dropped) or `max_new_tokens`.

        Args:
            context: int64 [B, H], each row's last N-1 ids (BOS-padded).
            max_new_tokens: int32 scalar >= 1.
            temperature, top_p: float64 scalars; top_k, seed: int32 scalars.
            eos_id: python int.

        Returns:
            int32 RaggedTensor [B, None].
        """
        batch = tf.shape(context)[0]
        vocabulary = tf.range(self.vocabulary_size, dtype=tf.int64)[None, :]  # (1, V)

        def condition(step, context, new_ids, done, lengths):
            return (step < max_new_tokens) & ~tf.reduce_all(done)

        def body(step, context, new_ids, done, lengths):
            log_probs = self._log_probs(context, vocabulary)  # (B, V)
            token = _pick(log_probs, temperature, top_k, top_p, tf.stack([seed, step]))
            token = tf.where(done, tf.constant(eos_id, tf.int64), token)  # (B,)
            new_ids = tf.where(tf.equal(tf.range(max_new_tokens), step)[None, :],
                               tf.cast(token, tf.int32)[:, None], new_ids)
            stops = ~done & tf.equal(token, eos_id)
            lengths = tf.where(stops, step, lengths)
            if self.order > 1:
                context = tf.concat([context[:, 1:], token[:, None]], axis=1)
            return step + 1, context, new_ids, done | stops, lengths

        _, _, new_ids, _, lengths = tf.while_loop(condition, body, (
            tf.constant(0, tf.int32), context,
            tf.zeros(tf.stack([batch, max_new_tokens]), tf.int32),
            tf.zeros([batch], tf.bool), tf.fill([batch], max_new_tokens),
        ))
        return tf.RaggedTensor.from_tensor(new_ids, lengths=lengths)

    def signatures(self):
        """The signature name -> concrete function map for `tf.saved_model.save`."""
        return generation_signatures(self)

    def metadata(self):
        """What `keras_lm_export.json` records about these signatures beyond their specs."""
        return {
            "model_config": dict(self._model_config),
            "order": self.order,
            "generate_defaults": dict(self.defaults),
            "max_new_tokens_limit": MAX_NEW_TOKENS_LIMIT,
            "stop_token_id": int(self.tokenizer.eos_id),
        }


def _pick(log_probs, temperature, top_k, top_p, seed):
    """One token per row of float64 [B, V] log-probabilities: int64 [B].

    Greedy if `temperature` <= 0; else a stateless draw from softmax(log_probs / temperature)
    restricted to the top_k / top_p set (see `NGramModule`). Tokens are ranked by `TopKV2`,
    which puts the lower id first among equal values: rank 0 is the greedy token.
    """
    def greedy():
        best = tf.reduce_max(log_probs, axis=-1, keepdims=True)
        ids = tf.range(tf.shape(log_probs)[-1], dtype=tf.int64)[None, :]
        return tf.reduce_min(tf.where(tf.equal(log_probs, best), ids, tf.int64.max), axis=-1)

    def sampled():
        vocabulary_size = tf.shape(log_probs)[-1]
        # Shifted so the best token's logit is 0: no overflow for a tiny temperature.
        scaled = (log_probs - tf.reduce_max(log_probs, axis=-1, keepdims=True)) / temperature
        ranked, ids = tf.math.top_k(scaled, k=vocabulary_size)  # (B, V), descending
        rank = tf.range(vocabulary_size)[None, :]
        k = tf.where(top_k > 0, tf.minimum(top_k, vocabulary_size), vocabulary_size)
        neg_inf = tf.constant(-np.inf, tf.float64)
        ranked = tf.where(rank < k, ranked, neg_inf)
        mass_before = tf.cumsum(tf.nn.softmax(ranked, axis=-1), axis=-1, exclusive=True)
        keep = (mass_before < top_p) | tf.equal(rank, 0)  # rank 0 always: top_p <= 0, NaN
        ranked = tf.where(keep, ranked, neg_inf)
        choice = tf.random.stateless_categorical(ranked, 1, seed=seed, dtype=tf.int32)
        return tf.cast(tf.gather(ids, choice, batch_dims=1)[:, 0], tf.int64)

    return tf.cond(temperature > 0.0, sampled, greedy)


def _fitted_tables(model):
    """The (keys, log_prob, log_backoff) tables of a fitted NGramLM, with a clear error."""
    tables = getattr(model, "backoff_tables", None)
    if tables is None or not all(hasattr(model, a) for a in ("order", "bos_id", "eos_id")):
        raise TypeError(
            f"NGramModule exports a keras_lm NGramLM; received a {type(model).__name__}. "
            "Export Keras language models with kind='causal_lm'."
        )
    return tables


def _variable(array, name):
    return tf.Variable(array, trainable=False, name=name)
