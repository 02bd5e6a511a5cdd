"""Extractive QA inputs: question + context windows, answer labels, and answer decoding.

A context longer than a row is split into overlapping windows of context tokens; window w
covers tokens [w * stride, w * stride + L) (L = T - 3 - question tokens) and the last window
ends at the context's end, so every token is in at least one window and consecutive windows
overlap by L - stride tokens. A row is `[CLS] question [SEP] window [SEP]` (segment ids 0 then
1). The answer's start and end labels are its first and last token's row positions when the
whole answer is inside the window, else both 0 ([CLS]), as in BERT.

Answers are decoded back to characters of the original context: every context token keeps
its character span (`token_char_spans`), and the chosen span is
`context[start_char(first token) : end_char(last token)]`.

Shape letters: N windows, T tokens a row.
"""

import numpy as np

from keras_lm.data.encoder_inputs import special_token_ids


def token_char_spans(tokenizer, text):
    """Token ids of `text` and the [start, end) character span of each token.

    Char tokenizer: one code point a token. Byte tokenizer: a byte's span is its character's
    (a multi-byte character's bytes share one span). SentencePiece: the pieces' byte offsets
    (from the `sentencepiece` processor, which tokenizes like the graph op) turned into
    characters.

    Returns:
        (ids, starts, ends): lists of int of equal length.

    Example:
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> token_char_spans(ByteTokenizer(), "é!")[1:]
    ([0, 0, 1], [1, 1, 2])
    """
    from keras_lm.tokenizers import ByteTokenizer
    from keras_lm.tokenizers import CharTokenizer
    from keras_lm.tokenizers import SentencePieceTokenizer

    if isinstance(tokenizer, CharTokenizer):
        ids = tokenizer.tokenize(text).numpy().tolist()
        return ids, list(range(len(text))), list(range(1, len(text) + 1))
    byte_to_char = _byte_to_char(text)
    if isinstance(tokenizer, ByteTokenizer):
        ids = tokenizer.tokenize(text).numpy().tolist()
        starts = [byte_to_char[b] for b in range(len(ids))]
        return ids, starts, [s + 1 for s in starts]
    if isinstance(tokenizer, SentencePieceTokenizer):
        proto = tokenizer.processor.encode(text, return_type="proto")
        ids, starts, ends = [], [], []
        for piece in proto.pieces:
            ids.append(piece.id)
            starts.append(byte_to_char[piece.begin])
            ends.append(byte_to_char[piece.end])
        return ids, starts, ends
    raise TypeError(
        "token_char_spans supports CharTokenizer, ByteTokenizer and SentencePieceTokenizer. "
        f"Received: {type(tokenizer).__name__}"
    )


def _byte_to_char(text):
    """int list: the character index of each UTF-8 byte offset (and of the end offset)."""
    table = []
    for index, character in enumerate(text):
        table.extend([index] * len(character.encode("utf-8")))
    table.append(len(text))
    return table


def window_starts(num_context_tokens, window_length, stride):
    """Start offsets of the context windows (see the module docstring).

    Example:
    >>> window_starts(10, 4, 3)  # windows [0, 4), [3, 7), [6, 10)
    [0, 3, 6]
    """
    if window_length < 1 or stride < 1:
        raise ValueError(
            f"window_length and stride must be >= 1. Received: window_length={window_length}, "
            f"stride={stride}. Shorten the question (max_question_tokens) or lengthen the rows."
        )
    if stride > window_length and num_context_tokens > window_length:
        raise ValueError(
            f"stride={stride} is larger than the {window_length} context tokens of a window: "
            f"tokens between windows would be skipped. Use a stride <= {window_length}."
        )
    starts = [0]
    while starts[-1] + window_length < num_context_tokens:
        starts.append(min(starts[-1] + stride, num_context_tokens - window_length))
    return starts


def answer_token_span(starts, ends, answer_start, answer_end):
    """First and last context token overlapping the characters [answer_start, answer_end).

    Example:
    >>> answer_token_span([0, 3, 7], [2, 6, 9], 3, 6)
    (1, 1)
    """
    first = next((i for i, end in enumerate(ends) if end > answer_start), None)
    last = next((i for i in range(len(starts) - 1, -1, -1) if starts[i] < answer_end), None)
    if first is None or last is None or last < first:
        raise ValueError(
            f"The answer characters [{answer_start}, {answer_end}) cover no token of the "
            "context; check answer_start."
        )
    return first, last


def qa_windows(examples, tokenizer, sequence_length, stride=64, max_question_tokens=32):
    """Rows of question + context windows, with answer labels and decoding information.

    Args:
        examples: list of {"question", "context", "answers"?: [{"text", "answer_start"}]}
            (the first answer gives the training labels).
        tokenizer: a char, byte or SentencePiece keras_lm tokenizer.
        sequence_length: int T.
        stride: int, context tokens between the starts of consecutive windows.
        max_question_tokens: int, questions are cut to this many tokens.

    Returns:
        (arrays, windows): arrays is a dict of numpy [N, T] `token_ids`, `segment_ids` and
        [N] `start_positions`, `end_positions`; windows a list of N dicts: `example` (index),
        `offset` (row position of the first context token), `context_start` (context token
        index of that position), `length` (context tokens in the row), `starts`, `ends`
        (character spans of the example's context tokens).

    Example:
    >>> from keras_lm.tokenizers import CharTokenizer
    >>> tokenizer = CharTokenizer.fit(["abcdefghij?"])
    >>> arrays, windows = qa_windows(
    ...     [{"question": "b?", "context": "abcdefghij",
    ...       "answers": [{"text": "gh", "answer_start": 6}]}], tokenizer, 10, stride=3)
    >>> [w["context_start"] for w in windows], arrays["start_positions"].tolist()
    ([0, 3, 5], [0, 7, 5])
    """
    if isinstance(max_question_tokens, bool) or not isinstance(max_question_tokens, int) \
            or max_question_tokens < 1:
        raise ValueError(
            f"max_question_tokens must be an int >= 1. Received: "
            f"max_question_tokens={max_question_tokens!r}."
        )
    ids = special_token_ids(tokenizer)
    rows, segments, start_labels, end_labels, windows = [], [], [], [], []
    for index, example in enumerate(examples):
        question = tokenizer.tokenize(example["question"]).numpy().tolist()[:max_question_tokens]
        context_ids, starts, ends = token_char_spans(tokenizer, example["context"])
        offset = len(question) + 2  # [CLS] question [SEP]
        window_length = sequence_length - offset - 1
        if window_length < 1:
            raise ValueError(
                f"Example {index}: sequence_length={sequence_length} leaves no room for "
                f"context tokens after [CLS], its {len(question)}-token question (cut to "
                f"max_question_tokens={max_question_tokens}) and two [SEP]. Use a "
                f"sequence_length > {offset + 1} or a smaller max_question_tokens."
            )
        answer = None
        if example.get("answers"):
            first = example["answers"][0]
            _check_answer(index, example["context"], first)
            answer = answer_token_span(starts, ends, first["answer_start"],
                                       first["answer_start"] + len(first["text"]))
        try:
            starts_of_windows = window_starts(len(context_ids), window_length, stride)
        except ValueError as error:
            raise ValueError(
                f"{error} (Example {index}: its {len(question)}-token question leaves "
                f"{window_length} context tokens in a row of sequence_length={sequence_length}; "
                "a smaller max_question_tokens or a longer sequence_length also helps.)"
            ) from error
        for start in starts_of_windows:
            piece = context_ids[start:start + window_length]
            row = [ids["cls"]] + question + [ids["sep"]] + piece + [ids["sep"]]
            segment = [0] * offset + [1] * (len(piece) + 1)
            pad = sequence_length - len(row)
            rows.append(row + [0] * pad)
            segments.append(segment + [0] * pad)
            label = (0, 0)
            if answer is not None and start <= answer[0] and answer[1] < start + len(piece):
                label = (answer[0] - start + offset, answer[1] - start + offset)
            start_labels.append(label[0])
            end_labels.append(label[1])
            windows.append({"example": index, "offset": offset, "context_start": start,
                            "length": len(piece), "starts": starts, "ends": ends})
    arrays = {
        "token_ids": np.asarray(rows, np.int32).reshape(-1, sequence_length),
        "segment_ids": np.asarray(segments, np.int32).reshape(-1, sequence_length),
        "start_positions": np.asarray(start_labels, np.int32),
        "end_positions": np.asarray(end_labels, np.int32),
    }
    return arrays, windows


def _check_answer(index, context, answer):
    """Raises unless `answer["text"]` is a non-empty text at `answer["answer_start"]`."""
    text, start = answer["text"], answer["answer_start"]
    if not text:
        raise ValueError(
            f"Example {index}: the answer text is empty. Give the answer's text, or no "
            "`answers` (an empty list) for a question without an answer."
        )
    found = context[start:start + len(text)] if 0 <= start <= len(context) else None
    if found != text:
        raise ValueError(
            f"Example {index}: the answer {text!r} is not at answer_start={start} of the "
            f"context (found {found!r}); answer_start must be the character offset of the "
            "answer in the context."
        )


def best_spans(start_logits, end_logits, windows, contexts, max_answer_tokens=30):
    """The best answer of each example over all its windows, as text of the context.

    A span (i, j) of a window is valid when both tokens are context tokens of the window,
    i <= j and j - i + 1 <= `max_answer_tokens`; its score is start_logit[i] + end_logit[j].
    The highest-scoring valid span of all the example's windows wins (the same context
    tokens seen in two windows compete with their two scores).

    Args:
        start_logits, end_logits: float arrays [N, T] (one row per window).
        windows: the window dicts of `qa_windows`.
        contexts: list of the examples' context strings.
        max_answer_tokens: int >= 1.

    Returns:
        A list (one per example) of dicts: `text` (`context[start_char:end_char]`, white
        space at its ends trimmed), `start_char`, `end_char`, `score`.
    """
    start_logits = np.asarray(start_logits, np.float64)
    end_logits = np.asarray(end_logits, np.float64)
    best = [None] * len(contexts)
    for row, window in enumerate(windows):
        offset, length = window["offset"], window["length"]
        starts = start_logits[row, offset:offset + length]  # (L,)
        ends = end_logits[row, offset:offset + length]
        scores = starts[:, None] + ends[None, :]  # (L, L): start i, end j
        i, j = np.indices(scores.shape)
        valid = (j >= i) & (j - i < max_answer_tokens)
        if not valid.any():
            continue
        scores = np.where(valid, scores, -np.inf)
        flat = int(np.argmax(scores))
        i, j = divmod(flat, length)
        score = float(scores[i, j])
        example = window["example"]
        if best[example] is None or score > best[example]["score"]:
            first = window["context_start"] + i
            last = window["context_start"] + j
            start_char, end_char = window["starts"][first], window["ends"][last]
            context = contexts[example]
            # A piece may carry the space before its word ("▁word"): trim it off the answer.
            while start_char < end_char and context[start_char].isspace():
                start_char += 1
            while end_char > start_char and context[end_char - 1].isspace():
                end_char -= 1
            best[example] = {"text": contexts[example][start_char:end_char],
                             "start_char": start_char, "end_char": end_char, "score": score}
    return [b if b is not None else {"text": "", "start_char": 0, "end_char": 0,
                                     "score": -np.inf} for b in best]
