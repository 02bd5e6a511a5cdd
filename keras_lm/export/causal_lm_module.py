"""SavedModel endpoints of a causal language model: strings in, strings and scores out."""

import numpy as np
import tensorflow as tf

from keras_lm.export.batching import continuations
from keras_lm.export.batching import pack_prompts
from keras_lm.export.batching import score_windows
from keras_lm.export.text_generation import STRINGS
from keras_lm.export.text_generation import generated_texts
from keras_lm.export.text_generation import generation_functions
from keras_lm.export.text_generation import generation_signatures
from keras_lm.generation.decoding import _decode_loop

# Added to every logit but the stop token's once a row has all its tokens: finite, so that
# temperature scaling and top-p arithmetic never meet inf - inf.
_FORCE = -1e9
# The first token of the sorted distribution has mass 0 before it: any positive top_p keeps it.
_SMALLEST_TOP_P = 1e-9


class CausalLMModule(tf.Module):
    """The serving signatures of a causal LM (`DecoderLM`, `RecurrentLM`, `HMMLanguageModel`).

    Every signature takes `tf.string` [B] texts (any B, empty strings allowed):

        generate(prompts) -> texts, token_counts          (= serving_default)
        generate_with_options(prompts, max_new_tokens, temperature, top_k, top_p, seed)
            -> texts, token_counts
        score(texts) -> log_likelihood, token_counts

    `generate` is `generate_with_options` with the defaults given here (TF Serving has no
    optional inputs, so the defaults live in a signature of their own). `texts` are the
    continuations only (prompt not repeated), cut before the tokenizer's `eos_id`, with
    invalid UTF-8 replaced by U+FFFD; `token_counts` are their lengths in tokens.
    `score` gives each text's total log-likelihood (nats) and the number of tokens scored,
    with the conventions of `keras-lm evaluate`: the model reads [eos, text] and predicts
    [text, eos], so perplexity = exp(-log_likelihood / token_counts).

    Sampling options: `temperature` <= 0 is greedy decoding; `top_k` <= 0 keeps every
    token; `top_p` is nucleus sampling, 1 keeps every token and values <= 0 keep only the
    most likely one; the same `seed` gives the same text.

    Long input never fails:
    - `max_new_tokens` is clamped to [1, C - 1] (C: the model's `sequence_length`);
    - a prompt keeps its last C - max_new_tokens tokens (`generate(..., truncate=True)`);
    - an empty prompt starts a new document (the eos token is its one token);
    - a text longer than the scoring window (`score_length`, default C) is scored in
      consecutive windows of that many tokens, each read without the previous one (as
      `keras-lm evaluate` does with `data.sequence_length`, which `keras-lm export` passes).

    Decoding is `keras_lm.generation`'s XLA-compiled loop with the KV (or recurrent) cache,
    on a fixed [B, C] buffer so that XLA compiles it once per batch size. A row stops at its
    eos or after `max_new_tokens`; the loop ends when every row has stopped. For the same
    settings and seed, the text equals `model.generate(..., truncate=True)`.

    Shape letters: B batch, C context, V vocabulary.

    Args:
        model: a built keras_lm causal LM: `sequence_length`, `vocabulary_size`,
            `init_cache`, `call_with_cache`, and a forward call returning logits [B, T, V].
        tokenizer: the keras_lm tokenizer the model was trained with.
        max_new_tokens: int, default of the `generate` signature (clamped to [1, C - 1]).
        temperature: float, default (0: greedy).
        top_k: int, default (0: off).
        top_p: float, default (1.0: off).
        seed: int, default sampling seed (the same seed gives the same text, for a prompt
            alone or batched with any others).
        score_length: int in [1, C] or None (C): the window of `score`. Give the training
            data's `sequence_length` so that scores equal `keras-lm evaluate`'s, e.g. for a
            recurrent LM whose nominal context is longer than its training windows.

    Example:
    >>> module = CausalLMModule(model, tokenizer, max_new_tokens=32)
    >>> tf.saved_model.save(module, path, signatures=module.signatures())
    >>> loaded = tf.saved_model.load(path)
    >>> loaded.signatures["generate"](prompts=tf.constant(["To be", ""]))["texts"]
    """

    main_signature = "generate"

    def __init__(self, model, tokenizer, max_new_tokens=64, temperature=0.0, top_k=0,
                 top_p=1.0, seed=0, score_length=None):
        super().__init__(name="keras_lm_causal_lm")
        if tokenizer.vocabulary_size != model.vocabulary_size:
            raise ValueError(
                f"The tokenizer's vocabulary ({tokenizer.vocabulary_size} tokens) does not "
                f"match the model's ({model.vocabulary_size}). Export the tokenizer saved with "
                "the model (its workdir's tokenizer/ directory)."
            )
        if tokenizer.eos_id is None:
            raise ValueError(
                "The exported generator needs a tokenizer with an end-of-text id (`eos_id`): it "
                "separates documents, starts an empty prompt and stops generation. Train a "
                "SentencePiece model with an eos piece (sentencepiece's default, eos_id=2)."
            )
        if not model.built:
            model.build()
        context = int(model.sequence_length)
        if context < 2:
            raise ValueError(
                "A model needs a context of at least 2 tokens to generate (one prompt token, "
                f"one new token). Received: sequence_length={context}."
            )
        if score_length is None:
            score_length = context
        if (isinstance(score_length, bool) or not isinstance(score_length, (int, np.integer))
                or not 1 <= score_length <= context):
            raise ValueError(
                f"`score_length` must be an int in [1, {context}] (the model's context), the "
                "window `score` reads, e.g. the training data's sequence_length. Received: "
                f"score_length={score_length!r}"
            )
        score_length = int(score_length)
        self.context_length = context
        self.score_length = score_length
        self.defaults = {
            "max_new_tokens": max(1, min(int(max_new_tokens), context - 1)),
            "temperature": float(temperature),
            "top_k": int(top_k),
            "top_p": float(top_p),
            "seed": int(seed),
        }
        # Tracked state: the variables the functions capture, and the tokenizer's tables.
        # The Keras model itself is only closed over (its layer lists are not trackable).
        self.model_variables = backend_variables(model)
        self.tokenizer = tokenizer
        stop_id = tokenizer.eos_id

        @tf.function(jit_compile=True)
        def decode(tokens, lengths, limits, temperature, top_k, top_p, seed):
            return _decode_loop(
                _StopAtLimits(model, limits, stop_id), tokens, lengths, temperature, top_k,
                top_p, seed, tf.constant([stop_id], tf.int32), use_cache=True,
            )

        def generate_texts(prompts, max_new_tokens, temperature, top_k, top_p, seed):
            max_new_tokens = tf.clip_by_value(tf.cast(max_new_tokens, tf.int32), 1, context - 1)
            ids = tokenizer.tokenize(prompts)  # (B, None) ragged
            tokens, lengths = pack_prompts(ids, stop_id, context - max_new_tokens, context)
            # top_p <= 0 would filter out every token: keep the most likely one instead.
            top_p = tf.maximum(tf.cast(top_p, tf.float32), _SMALLEST_TOP_P)
            tokens, end = decode(
                tokens, lengths, lengths + max_new_tokens, tf.cast(temperature, tf.float32),
                tf.cast(top_k, tf.int32), top_p, tf.cast(seed, tf.int32),
            )
            new_ids = continuations(tokens, lengths, end, max_new_tokens, stop_id)
            return generated_texts(tokenizer, new_ids)

        generate, generate_with_options = generation_functions(generate_texts, self.defaults)

        @tf.function(input_signature=[STRINGS])
        def score(texts):
            ids = tokenizer.tokenize(texts)  # (B, None) ragged
            inputs, labels, weights, text_index = score_windows(ids, stop_id, score_length)
            logits = tf.cast(model(inputs, training=False), tf.float32)  # (B N, Wd, V)
            log_probs = tf.gather(tf.nn.log_softmax(logits), labels, batch_dims=2)  # (B N, Wd)
            log_probs = tf.where(weights > 0, tf.cast(log_probs, tf.float64), 0.0)
            batch = tf.shape(texts)[0]

            def per_text(x):  # (B N, Wd) -> (B,)
                return tf.math.unsorted_segment_sum(tf.reduce_sum(x, axis=1), text_index, batch)

            return {
                "log_likelihood": tf.cast(per_text(log_probs), tf.float32),
                "token_counts": tf.cast(per_text(weights), tf.int32),
            }

        self.generate = generate
        self.generate_with_options = generate_with_options
        self.score = score

    def signatures(self):
        """The signature name -> concrete function map for `tf.saved_model.save`."""
        return generation_signatures(self)

    def metadata(self):
        """What `keras_lm_export.json` records about these signatures beyond their specs."""
        return {
            "context_length": self.context_length,
            "score_length": self.score_length,
            "generate_defaults": dict(self.defaults),
            "stop_token_id": int(self.tokenizer.eos_id),
        }


def backend_variables(model):
    """The model's `tf.Variable`s, which its traced functions read.

    Track these, not the `keras.Variable` wrappers: a SavedModel saves a Keras 3 variable
    as a copy, so TF2 `tf.saved_model.load` works but a Session-based loader (TF Serving,
    `saved_model_cli run`) restores the copies while the graph reads the originals, and
    fails with "Resource .../N10tensorflow3VarE does not exist".
    """
    variables = []
    for variable in model.variables:
        value = getattr(variable, "value", variable)  # keras.Variable -> its tf.Variable
        if not isinstance(value, tf.Variable):
            raise TypeError(
                "Exporting needs the TensorFlow backend (KERAS_BACKEND=tensorflow): "
                f"variable {variable.path!r} holds a {type(value).__name__}."
            )
        variables.append(value)
    return variables


class _StopAtLimits:
    """A model view whose logits force the stop token once a row has all its new tokens.

    The decoding loop then marks the row done, and it ends when every row is done: a batch
    runs exactly as many steps as `generate` would, on a buffer of fixed width.
    """

    def __init__(self, model, limits, stop_id):
        self.model = model
        self.limits = limits  # (B,) the first position a row may not fill
        self.stop_id = stop_id
        self.vocabulary_size = model.vocabulary_size
        self.cache_is_positional = getattr(model, "cache_is_positional", True)

    def init_cache(self, batch_size, cache_length):
        return self.model.init_cache(batch_size, cache_length)

    def call_with_cache(self, token_ids, cache, cache_update_index):
        logits, cache = self.model.call_with_cache(token_ids, cache, cache_update_index)
        logits = tf.cast(logits, tf.float32)  # (B, T, V)
        # logits[:, j] predict position cache_update_index + j + 1.
        positions = tf.cast(cache_update_index, tf.int32) + 1 + tf.range(tf.shape(logits)[1])
        full = positions[None, :] >= self.limits[:, None]  # (B, T)
        forced = tf.one_hot(self.stop_id, tf.shape(logits)[-1], 0.0, _FORCE)  # (V,)
        return tf.where(full[:, :, None], forced, logits), cache
