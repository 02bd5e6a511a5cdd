"""SavedModel endpoints of extractive question answering: questions and contexts in, answers out."""

import functools
import sys

import tensorflow as tf

from keras_lm.data.encoder_inputs import special_token_ids
from keras_lm.export.causal_lm_module import backend_variables
from keras_lm.export.classifier_module import check_encoder_tokenizer
from keras_lm.export.classifier_module import encoder_sequence_length

_NEG_INF = float("-inf")


@functools.lru_cache(maxsize=None)
def space_code_points():
    """Code points for which python's `str.isspace()` is true.

    The in-process decoder trims them off an answer's ends (`keras_lm.data.qa.best_spans`),
    so the graph trims the same set.
    """
    return tuple(c for c in range(sys.maxunicode + 1) if chr(c).isspace())


class QAModule(tf.Module):
    """The serving signature of an extractive QA model (`QuestionAnswering`).

        answer(questions, contexts) -> answers, scores          (= serving_default)

    Both inputs are `tf.string` [B] (any B, empty strings allowed). `answers` is tf.string
    [B], a span of each context (white space at its ends trimmed, so a span of spaces is
    ""); `scores` is float32 [B], the span's start logit + end logit, comparable within one
    model only. An empty context has no span: "" and -inf.

    The decoding is the in-process one (`keras_lm.tasks.question_answering.answer`, i.e.
    `keras_lm.data.qa.qa_windows` + `best_spans`), written in graph ops:
    - the question keeps its first `max_question_tokens` tokens;
    - a row is `[CLS] question [SEP] window [SEP]`; a context longer than the row is cut
      into windows of L = T - 3 - question tokens context tokens, starting every `stride`
      tokens, the last one ending at the context's end (so long contexts never fail; they
      cost more rows);
    - a span (i, j) is valid inside one window's context tokens with j - i <
      `max_answer_tokens`; the best valid span over all windows wins (earliest window and
      then earliest (i, j) on a tie), with its score summed in float64 as in python;
    - the span is mapped back to the context's characters through the tokenizer's offsets.
    One difference: where L < `stride` (a long question with a large stride) python raises
    (tokens would be skipped), and the graph uses a stride of L instead.

    Shape letters: B batch, W windows of the batch, T `sequence_length`.

    Args:
        model: a built `QuestionAnswering` model (logits [B, T, 2] from
            {"token_ids", "segment_ids"}).
        tokenizer: its keras_lm tokenizer: char, byte or SentencePiece.
        sequence_length: int T (`config.data.sequence_length`; default: the backbone's).
        stride: int >= 1, context tokens between window starts (`config.data.stride`).
        max_question_tokens: int, questions are cut to this many tokens, at most T - 4.
        max_answer_tokens: int >= 1, the longest answer in tokens.

    Example:
    >>> module = QAModule(model, tokenizer, sequence_length=128, stride=64)
    >>> tf.saved_model.save(module, path, signatures=module.signatures())
    >>> tf.saved_model.load(path).signatures["answer"](
    ...     questions=tf.constant(["Who?"]), contexts=tf.constant(["Romeo loves Juliet."]))
    """

    main_signature = "answer"

    def __init__(self, model, tokenizer, sequence_length=None, stride=64, max_question_tokens=32,
                 max_answer_tokens=30):
        super().__init__(name="keras_lm_question_answering")
        if not model.built:
            model.build()
        check_encoder_tokenizer(model, tokenizer)
        width = encoder_sequence_length(model, sequence_length, specials=4)
        for name, value, low, high in (("stride", stride, 1, None),
                                       ("max_question_tokens", max_question_tokens, 0, width - 4),
                                       ("max_answer_tokens", max_answer_tokens, 1, None)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (
                high is not None and value > high
            ):
                raise ValueError(
                    f"`{name}` must be an int >= {low}" + (
                        f" and <= {high} (a row of {width} tokens keeps room for 3 special "
                        "tokens and one context token)" if high is not None else "") +
                    f". Received: {name}={value!r}"
                )
        self.options = {"sequence_length": width, "stride": stride,
                        "max_question_tokens": max_question_tokens,
                        "max_answer_tokens": max_answer_tokens}
        self.model_variables = backend_variables(model)
        self.tokenizer = tokenizer
        offsets = token_byte_offsets_fn(tokenizer)
        specials = special_token_ids(tokenizer)
        spaces = tf.constant(space_code_points(), tf.int32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="questions"),
                                      tf.TensorSpec([None], tf.string, name="contexts")])
        def answer(questions, contexts):
            tf.debugging.assert_equal(
                tf.shape(questions), tf.shape(contexts),
                message="answer needs one context per question.")
            question_ids = tokenizer.tokenize(questions)[:, :max_question_tokens]
            context_ids, token_starts, token_ends = offsets(contexts)  # (B, None) each
            rows = qa_rows(question_ids, context_ids, width, stride, specials["cls"],
                           specials["sep"])
            logits = tf.cast(model({"token_ids": rows["token_ids"],
                                    "segment_ids": rows["segment_ids"]}, training=False),
                             tf.float32)  # (W, T, 2)
            window, first, last, score = best_span(
                logits, rows, tf.shape(questions)[0], max_answer_tokens)
            found = window >= 0  # (B,)
            # Context token index -> its flat position in the ragged offsets.
            row_starts = tf.cast(context_ids.row_starts(), tf.int32)
            start_byte = tf.gather(token_starts.flat_values,
                                   tf.where(found, row_starts + first, 0))
            end_byte = tf.gather(token_ends.flat_values, tf.where(found, row_starts + last, 0))
            start_byte = tf.where(found, start_byte, 0)
            end_byte = tf.where(found, end_byte, 0)
            text = tf.strings.substr(contexts, start_byte, end_byte - start_byte, unit="BYTE")
            return {"answers": trim_spaces(text, spaces), "scores": tf.cast(score, tf.float32)}

        self.answer = answer

    def signatures(self):
        """The signature name -> concrete function map for `tf.saved_model.save`."""
        answer = self.answer.get_concrete_function()
        return {"serving_default": answer, "answer": answer}

    def metadata(self):
        """What `keras_lm_export.json` records about these signatures beyond their specs."""
        return {"qa_options": dict(self.options)}


def qa_rows(question_ids, context_ids, width, stride, cls_id, sep_id):
    """`[CLS] question [SEP] window [SEP]` rows of every context window (`qa_windows`).

    Args:
        question_ids: int32 RaggedTensor [B, None], the (already cut) questions.
        context_ids: int32 RaggedTensor [B, None], the contexts.
        width: python int T.
        stride: python int, context tokens between window starts.
        cls_id, sep_id: ints.

    Returns:
        A dict: `token_ids`, `segment_ids` int32 [W, T]; and per window, int32 [W]:
        `example` (its question's index), `offset` (row position of its first context
        token), `context_start` (context token index there), `length` (context tokens).
    """
    question_length = tf.cast(question_ids.row_lengths(), tf.int32)  # (B,)
    context_length = tf.cast(context_ids.row_lengths(), tf.int32)  # (B,)
    offset = question_length + 2  # [CLS] question [SEP]
    room = width - offset - 1  # L, >= 1 as max_question_tokens <= T - 4
    step = tf.minimum(stride, room)  # python refuses stride > L; see QAModule
    overflow = tf.maximum(context_length - room, 0)
    count = 1 + (overflow + step - 1) // step  # windows per example
    example = tf.repeat(tf.range(tf.size(count)), count)  # (W,)
    k = tf.ragged.range(count).flat_values  # window number within its example, (W,)
    start = tf.minimum(k * tf.gather(step, example), tf.gather(overflow, example))  # (W,)
    length = tf.minimum(tf.gather(room, example), tf.gather(context_length, example) - start)
    first = tf.gather(tf.cast(context_ids.row_starts(), tf.int32), example) + start
    positions = tf.ragged.range(first, first + length)  # (W, None) flat context positions
    pieces = tf.RaggedTensor.from_row_splits(
        tf.gather(context_ids.flat_values, positions.flat_values), positions.row_splits)
    questions = tf.gather(question_ids, example)  # (W, None)
    windows = tf.shape(example)[0]
    cls = tf.fill([windows, 1], tf.constant(cls_id, tf.int32))
    sep = tf.fill([windows, 1], tf.constant(sep_id, tf.int32))
    token_ids = tf.concat([cls, questions, sep, pieces, sep], axis=1)  # (W, None)
    window_offset = tf.gather(offset, example)
    segment_ids = tf.ragged.range(tf.zeros_like(window_offset),
                                  window_offset + length + 1) >= window_offset[:, None]
    return {
        "token_ids": token_ids.to_tensor(0, shape=[None, width]),
        "segment_ids": tf.cast(segment_ids, tf.int32).to_tensor(0, shape=[None, width]),
        "example": example,
        "offset": window_offset,
        "context_start": start,
        "length": length,
    }


def best_span(logits, rows, batch, max_answer_tokens):
    """The best valid answer span of each example over its windows (`qa.best_spans`).

    Args:
        logits: float32 [W, T, 2], start and end logits of every window row.
        rows: the dict of `qa_rows`.
        batch: int32 scalar B.
        max_answer_tokens: python int.

    Returns:
        (window int32 [B]: the chosen window, -1 if none; first, last int32 [B]: the span's
        first and last context token index; score float64 [B], -inf if none).
    """
    width = tf.shape(logits)[1]
    start_logits = tf.cast(logits[:, :, 0], tf.float64)  # (W, T)
    end_logits = tf.cast(logits[:, :, 1], tf.float64)
    scores = start_logits[:, :, None] + end_logits[:, None, :]  # (W, T, T): start i, end j
    i = tf.range(width)[None, :, None]
    j = tf.range(width)[None, None, :]
    begin = rows["offset"][:, None, None]
    end = (rows["offset"] + rows["length"])[:, None, None]  # exclusive
    valid = (i >= begin) & (j < end) & (j >= i) & (j - i < max_answer_tokens)  # (W, T, T)
    neg_inf = tf.constant(_NEG_INF, tf.float64)
    scores = tf.reshape(tf.where(valid, scores, neg_inf), [tf.shape(logits)[0], -1])
    window_best = tf.reduce_max(scores, axis=1)  # (W,)
    window_argmax = tf.argmax(scores, axis=1, output_type=tf.int32)  # first on a tie
    example = rows["example"]
    best = tf.math.unsorted_segment_max(window_best, example, batch)  # (B,)
    # The first window reaching its example's best score (python keeps the first on a tie).
    number = tf.range(tf.shape(example)[0])
    candidate = tf.where((window_best == tf.gather(best, example))
                         & (window_best > neg_inf), number, tf.int32.max)
    window = tf.math.unsorted_segment_min(candidate, example, batch)  # (B,)
    found = window < tf.int32.max
    window = tf.where(found, window, -1)
    safe = tf.maximum(window, 0)
    flat = tf.gather(window_argmax, safe)
    offset = tf.gather(rows["offset"], safe)
    context_start = tf.gather(rows["context_start"], safe)
    first = context_start + flat // width - offset
    last = context_start + flat % width - offset
    score = tf.where(found, best, neg_inf)
    return window, first, last, score


def trim_spaces(texts, spaces):
    """Strips leading and trailing characters in `spaces` (code points) off UTF-8 texts."""
    code_points = tf.strings.unicode_decode(texts, "UTF-8")  # (B, None)
    flat = code_points.flat_values
    is_space = tf.reduce_any(tf.equal(flat[:, None], spaces[None, :]), axis=-1)
    keep = code_points.with_flat_values(tf.logical_not(is_space))
    index = tf.ragged.range(tf.cast(code_points.row_lengths(), tf.int32))  # (B, None)
    kept_index = tf.ragged.boolean_mask(index, keep)
    length = tf.cast(code_points.row_lengths(), tf.int32)
    first = tf.reduce_min(kept_index, axis=1)  # int32.max on an all-space row
    last = tf.reduce_max(kept_index, axis=1)
    first = tf.minimum(first, length)
    last = tf.maximum(last, first - 1)
    inside = (index >= first[:, None]) & (index <= last[:, None])
    return tf.strings.unicode_encode(tf.ragged.boolean_mask(code_points, inside), "UTF-8")


def token_byte_offsets_fn(tokenizer):
    """A function: texts tf.string [B] -> (ids, starts, ends), int32 RaggedTensors [B, None].

    starts[b][i] and ends[b][i] are the UTF-8 byte offsets, in texts[b], of the characters
    that `keras_lm.data.qa.token_char_spans` gives token i: a char token's code point, a
    byte token's whole character, a SentencePiece piece's offsets moved back to the start of
    the character they fall in.
    """
    from keras_lm.tokenizers import ByteTokenizer
    from keras_lm.tokenizers import CharTokenizer
    from keras_lm.tokenizers import SentencePieceTokenizer

    def characters(texts):  # (B, None) start offsets, int32 [total] ends (flat)
        _, starts = tf.strings.unicode_decode_with_offsets(texts, "UTF-8")
        starts = tf.cast(starts, tf.int32)
        flat, rows = starts.flat_values, tf.cast(starts.value_rowids(), tf.int32)
        byte_lengths = tf.strings.length(texts, unit="BYTE")
        next_start = tf.concat([flat[1:], [0]], axis=0)
        same_row = tf.equal(tf.concat([rows[1:], [-1]], axis=0), rows)
        ends = tf.where(same_row, next_start, tf.gather(byte_lengths, rows))
        return starts, ends

    if isinstance(tokenizer, CharTokenizer):
        def offsets(texts):
            starts, ends = characters(texts)
            return tokenizer.tokenize(texts), starts, starts.with_flat_values(ends)
    elif isinstance(tokenizer, ByteTokenizer):
        def offsets(texts):
            starts, ends = characters(texts)
            size = ends - starts.flat_values  # bytes of each character
            ids = tokenizer.tokenize(texts)
            return (ids, ids.with_flat_values(tf.repeat(starts.flat_values, size)),
                    ids.with_flat_values(tf.repeat(ends, size)))
    elif isinstance(tokenizer, SentencePieceTokenizer):
        def offsets(texts):
            ids, begins, ends = tokenizer._live_sentencepiece().tokenize_with_offsets(texts)
            starts, _ = characters(texts)
            return (ids, _snap_down(tf.cast(begins, tf.int32), starts, texts),
                    _snap_down(tf.cast(ends, tf.int32), starts, texts))
    else:
        raise TypeError(
            "QA export supports CharTokenizer, ByteTokenizer and SentencePieceTokenizer (it "
            f"needs each token's character span). Received: {type(tokenizer).__name__}"
        )
    return offsets


def _snap_down(offsets, character_starts, texts):
    """Each byte offset moved back to the start of the character it falls in (or the end)."""
    byte_lengths = tf.strings.length(texts, unit="BYTE")
    # Per row, the sorted boundaries: every character start, then the text's end.
    ends = tf.RaggedTensor.from_tensor(byte_lengths[:, None])
    bounds = tf.concat([character_starts, ends], axis=1).to_tensor(tf.int32.max)  # (B, C+1)
    values = offsets.to_tensor(0)  # (B, P)
    index = tf.searchsorted(bounds, values, side="right") - 1
    snapped = tf.gather(bounds, tf.maximum(index, 0), batch_dims=1)
    return tf.RaggedTensor.from_tensor(snapped, lengths=offsets.row_lengths())
