"""SavedModel endpoints of an encoder-decoder model: source strings in, target strings out."""

import os

import numpy as np
import tensorflow as tf

from keras_lm.data.seq2seq import _check_special_ids
from keras_lm.export.causal_lm_module import STRINGS
from keras_lm.export.causal_lm_module import backend_variables
from keras_lm.export.text_generation import generated_texts
from keras_lm.generation.beam_search import _beam_search_loop
from keras_lm.models.seq2seq_decoding import _STOP_SLOTS
from keras_lm.models.seq2seq_decoding import _decode_loop

TARGET_TOKENIZER_ASSETS = os.path.join("assets", "target_tokenizer")


class Seq2SeqModule(tf.Module):
    """The serving signatures of a sequence-to-sequence model (`Seq2SeqTransformer`).

    Every signature takes `tf.string` [B] source texts (any B, empty strings allowed):

        generate(texts) -> texts, token_counts                      (= serving_default)
        generate_with_options(texts, max_new_tokens, beam_size) -> texts, token_counts

    `generate` is `generate_with_options` with the defaults given here (TF Serving has no
    optional inputs). `texts` are the outputs without the end-of-sequence token, invalid
    UTF-8 replaced by U+FFFD; `token_counts` their lengths in target tokens.

    Decoding is the in-process one (`Seq2SeqTransformer.generate` with `truncate=True`):
    `beam_size` 1 is greedy decoding (`keras_lm.models.seq2seq_decoding`'s loop), K > 1 beam
    search (`keras_lm.generation.beam_search`, scores `log P / lp(n)` with this module's
    `length_penalty`), each one XLA-compiled `tf.while_loop` with the decoder's cache. For
    the same source, `max_new_tokens` and `beam_size` the text equals the in-process one.
    Both `max_new_tokens` and `beam_size` are runtime inputs: they size the loop's buffers,
    so XLA compiles the loop once per (batch size, beam_size, max_new_tokens) it meets, and
    caches it (the first request of a new combination pays the compilation).

    Input handling (never fails on long input):
    - a source keeps its first S - 1 tokens, then the source `eos_id` (S: the model's
      `sequence_length`); an empty source is just `eos_id`;
    - `max_new_tokens` is clamped to [1, T] (T: `target_sequence_length`);
    - `beam_size` outside [1, `max_beam_size`] is an InvalidArgumentError (each value is a
      separate compiled program; the bound keeps clients from compiling without end).
    Sources are used as given: a task whose training sources were preprocessed (the
    "shakespeare_folio" sources are lower-case words, `keras_lm.tasks.seq2seq.prepare_inputs`)
    expects clients to send text in that form.

    Shape letters: B batch, S source length, T target length, K beams.

    Args:
        model: a built `Seq2SeqTransformer` (or a model of its decoding protocol with
            `sequence_length`, `target_sequence_length`, `vocabulary_size`).
        tokenizer: the source tokenizer (also the target one unless `target_tokenizer`).
        target_tokenizer: the target tokenizer of a model with separate vocabularies.
        max_new_tokens: int or None, default of `generate` (None: T; clamped to [1, T]).
        beam_size: int, default of `generate` (1: greedy).
        length_penalty: float alpha >= 0 of beam search (fixed at export).
        max_beam_size: int, the largest `beam_size` served.

    Example:
    >>> module = Seq2SeqModule(model, tokenizer, beam_size=4)
    >>> tf.saved_model.save(module, path, signatures=module.signatures())
    >>> tf.saved_model.load(path).signatures["generate"](texts=tf.constant(["12345"]))
    """

    main_signature = "generate"

    def __init__(self, model, tokenizer, target_tokenizer=None, max_new_tokens=None,
                 beam_size=1, length_penalty=0.0, max_beam_size=8):
        super().__init__(name="keras_lm_seq2seq")
        target_tokenizer = target_tokenizer or tokenizer
        if tokenizer.vocabulary_size != model.vocabulary_size:
            raise ValueError(
                f"The tokenizer's vocabulary ({tokenizer.vocabulary_size} tokens) does not "
                f"match the model's source vocabulary ({model.vocabulary_size}). Export the "
                "tokenizer saved with the model (its workdir's tokenizer/ directory)."
            )
        output_size = getattr(model, "output_vocabulary_size", model.vocabulary_size)
        if target_tokenizer.vocabulary_size != output_size:
            raise ValueError(
                f"The target tokenizer's vocabulary ({target_tokenizer.vocabulary_size}) does "
                f"not match the model's target vocabulary ({output_size}). Pass the workdir's "
                "target_tokenizer/ as target_tokenizer=."
            )
        _check_special_ids(tokenizer, target_tokenizer)  # source eos, target bos and eos
        for name, value in (("beam_size", beam_size), ("max_beam_size", max_beam_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1. Received: {name}={value!r}")
        if beam_size > max_beam_size:
            raise ValueError(
                f"The default `beam_size` ({beam_size}) is above `max_beam_size` "
                f"({max_beam_size}); raise max_beam_size. Received: beam_size={beam_size}"
            )
        if not length_penalty >= 0:
            raise ValueError(
                f"`length_penalty` must be >= 0. Received: length_penalty={length_penalty!r}")
        if not model.built:
            model.build()
        source_length = int(model.sequence_length)
        longest = int(model.target_sequence_length)
        if max_new_tokens is None:
            max_new_tokens = longest
        self.defaults = {"max_new_tokens": max(1, min(int(max_new_tokens), longest)),
                         "beam_size": int(beam_size)}
        self.length_penalty = float(length_penalty)
        self.max_beam_size = int(max_beam_size)
        self.source_length = source_length
        self.target_length = longest
        self.model_variables = backend_variables(model)
        self.tokenizer = tokenizer
        self.target_tokenizer = target_tokenizer
        source_eos = tokenizer.eos_id
        bos_id, eos_id = target_tokenizer.bos_id, target_tokenizer.eos_id
        stop_ids = np.full(_STOP_SLOTS, -1, np.int32)  # the in-process greedy stop list
        stop_ids[0] = eos_id
        alpha = self.length_penalty
        ids_spec = tf.TensorSpec([None, source_length], tf.int32)
        size_spec = tf.TensorSpec([], tf.int32)

        # The sizes are arguments, not constants, so that one traced function serves every
        # value: XLA treats them as compile-time constants and compiles once per value.
        sampler_specs = [tf.TensorSpec([], dtype) for dtype in  # bos, temperature, ... seed
                         (tf.int32, tf.float32, tf.int32, tf.float32, tf.int32)]

        @tf.function(jit_compile=True, input_signature=[ids_spec, size_spec, *sampler_specs,
                                                        tf.TensorSpec([None], tf.int32)])
        def greedy(source_ids, max_length, bos, temperature, top_k, top_p, seed, stops):
            return _decode_loop(model, source_ids, bos, stops, temperature, top_k, top_p,
                                seed, max_length=max_length, use_cache=True)

        @tf.function(jit_compile=True, input_signature=[
            ids_spec, size_spec, size_spec, size_spec, size_spec, tf.TensorSpec([], tf.float32)])
        def beam(source_ids, max_length, beam_size, bos, eos, length_penalty):
            sequences, _, lengths, _, _ = _beam_search_loop(
                model, source_ids, bos, eos, length_penalty, beam_size=beam_size,
                max_length=max_length, use_cache=True)
            return sequences[:, 0], lengths[:, 0]  # the best hypothesis

        def generate_texts(texts, max_new_tokens, beam_size):
            max_new_tokens = tf.clip_by_value(tf.cast(max_new_tokens, tf.int32), 1, longest)
            beam_size = tf.cast(beam_size, tf.int32)
            tf.debugging.assert_greater_equal(
                beam_size, 1, message=f"beam_size must be in [1, {max_beam_size}]")
            tf.debugging.assert_less_equal(
                beam_size, max_beam_size,
                message=f"beam_size must be in [1, {max_beam_size}] (max_beam_size of this "
                        "export)")
            source_ids = encode_sources(tokenizer.tokenize(texts), source_eos, source_length)

            def decode():
                return tf.cond(
                    beam_size > 1,
                    lambda: beam(source_ids, max_new_tokens, beam_size, bos_id, eos_id, alpha),
                    lambda: greedy(source_ids, max_new_tokens, bos_id, 0.0, 0, 1.0, 0,
                                   stop_ids),
                )  # (B, N), (B,)

            # XLA cannot update a cache of batch 0: an empty batch skips decoding.
            tokens, lengths = tf.cond(
                tf.shape(texts)[0] > 0, decode,
                lambda: (tf.zeros([0, max_new_tokens], tf.int32), tf.zeros([0], tf.int32)))
            last = tf.gather(tokens, tf.maximum(lengths - 1, 0), batch_dims=1)
            lengths -= tf.cast((lengths > 0) & tf.equal(last, eos_id), tf.int32)
            new_ids = tf.RaggedTensor.from_tensor(tokens, lengths=lengths)
            return generated_texts(target_tokenizer, new_ids)

        defaults = self.defaults

        @tf.function(input_signature=[STRINGS])
        def generate(texts):
            return generate_texts(texts, **defaults)

        @tf.function(input_signature=[STRINGS, tf.TensorSpec([], tf.int32, name="max_new_tokens"),
                                      tf.TensorSpec([], tf.int32, name="beam_size")])
        def generate_with_options(texts, max_new_tokens, beam_size):
            return generate_texts(texts, max_new_tokens, beam_size)

        self.generate = generate
        self.generate_with_options = generate_with_options

    def signatures(self):
        """The signature name -> concrete function map for `tf.saved_model.save`."""
        generate = self.generate.get_concrete_function()
        return {
            "serving_default": generate,
            "generate": generate,
            "generate_with_options": self.generate_with_options.get_concrete_function(),
        }

    def metadata(self):
        """What `keras_lm_export.json` records about these signatures beyond their specs."""
        shared = self.target_tokenizer is self.tokenizer
        return {
            "source_length": self.source_length,
            "target_length": self.target_length,
            "generate_defaults": dict(self.defaults),
            "length_penalty": self.length_penalty,
            "max_beam_size": self.max_beam_size,
            "target_tokenizer": None if shared else {
                "class": type(self.target_tokenizer).__name__,
                "directory": TARGET_TOKENIZER_ASSETS,
                "vocabulary_size": int(self.target_tokenizer.vocabulary_size),
            },
        }

    def save_assets(self, path):
        """Writes the target tokenizer (separate vocabularies only) beside the source one."""
        if self.target_tokenizer is not self.tokenizer:
            self.target_tokenizer.save(os.path.join(path, TARGET_TOKENIZER_ASSETS))


def encode_sources(ids, eos_id, width):
    """Source rows as `seq2seq_decoding.encode_sources(..., truncate=True)` makes them.

    Args:
        ids: int32 RaggedTensor [B, None], the tokenized sources.
        eos_id: int, the source end-of-sequence id.
        width: python int S.

    Returns:
        int32 [B, S]: the first S - 1 ids, eos, then zeros.
    """
    kept = ids[:, :width - 1]
    eos = tf.fill([kept.nrows(), 1], tf.constant(eos_id, tf.int32))
    return tf.concat([tf.cast(kept, tf.int32), eos], axis=1).to_tensor(0, shape=[None, width])
