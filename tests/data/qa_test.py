import numpy as np
import pytest

from keras_lm.data import qa
from keras_lm.tokenizers import ByteTokenizer
from keras_lm.tokenizers import CharTokenizer
from keras_lm.tokenizers import SentencePieceTokenizer

CONTEXT = "abcdefghijklmnopqrst"


@pytest.fixture
def char_tokenizer():
    return CharTokenizer.fit([CONTEXT + "? "])


def test_window_starts_cover_the_context():
    for n in range(1, 30):
        for length in range(1, 8):
            for stride in range(1, length + 1):
                starts = qa.window_starts(n, length, stride)
                covered = set()
                for s in starts:
                    covered |= set(range(s, min(n, s + length)))
                assert covered == set(range(n))
                assert all(b - a <= stride for a, b in zip(starts, starts[1:]))
                assert starts[-1] + length >= n
    with pytest.raises(ValueError, match="stride=5"):
        qa.window_starts(10, 4, 5)


def test_windows_and_labels_at_a_window_boundary(char_tokenizer):
    # T = 13: [CLS] q(2) [SEP] ctx(8) [SEP] -> windows of 8 context tokens, stride 4:
    # starts 0, 4, 8, 12. The answer "hijk" (chars 7..10) crosses the end of window 0
    # ([0, 8)) and the start of window 2 ([8, 16)): only window 1 ([4, 12)) holds it.
    example = {"question": "b?", "context": CONTEXT,
               "answers": [{"text": "hijk", "answer_start": 7}]}
    arrays, windows = qa.qa_windows([example], char_tokenizer, 13, stride=4)
    assert [w["context_start"] for w in windows] == [0, 4, 8, 12]
    offset = 4
    assert arrays["start_positions"].tolist() == [0, 7 - 4 + offset, 0, 0]
    assert arrays["end_positions"].tolist() == [0, 10 - 4 + offset, 0, 0]
    # An answer ending exactly on a window's last token belongs to that window.
    example["answers"] = [{"text": "efgh", "answer_start": 4}]
    arrays, _ = qa.qa_windows([example], char_tokenizer, 13, stride=4)
    assert arrays["start_positions"].tolist() == [4 + offset, 0 + offset, 0, 0]
    assert arrays["end_positions"].tolist() == [7 + offset, 3 + offset, 0, 0]
    row = arrays["token_ids"][1]
    assert char_tokenizer.detokenize(row).numpy().decode() == "b?efghijkl"
    np.testing.assert_array_equal(arrays["segment_ids"][1], [0] * 4 + [1] * 9)


def test_best_span_across_windows_maps_to_characters(char_tokenizer):
    example = {"question": "b?", "context": CONTEXT}
    arrays, windows = qa.qa_windows([example], char_tokenizer, 13, stride=4)
    start = np.full(arrays["token_ids"].shape, -5.0)
    end = np.full(arrays["token_ids"].shape, -5.0)
    # Window 1 prefers "ij" (context 8..9); window 2 prefers "mn" with a higher score.
    start[1, 4 + 4], end[1, 4 + 5] = 3.0, 3.0
    start[2, 4 + 4], end[2, 4 + 5] = 4.0, 4.0
    # An invalid span with a huge score: end before start.
    start[3, 4 + 3], end[3, 4 + 1] = 50.0, 50.0
    start[3, 4:4 + 2], end[3, 4 + 3:] = -100.0, -100.0  # so no valid span uses either 50
    # Specials and question positions never count.
    start[:, 0], end[:, 0] = 100.0, 100.0
    best = qa.best_spans(start, end, windows, [CONTEXT])[0]
    assert (best["text"], best["start_char"], best["end_char"]) == ("mn", 12, 14)
    assert best["score"] == pytest.approx(8.0)
    # max_answer_tokens forbids spans longer than it.
    start[:], end[:] = 0.0, 0.0
    start[0, 4], end[0, 4 + 7] = 10.0, 10.0  # "a".."h", 8 tokens
    assert qa.best_spans(start, end, windows, [CONTEXT], max_answer_tokens=8)[0]["text"] == \
        "abcdefgh"
    short = qa.best_spans(start, end, windows, [CONTEXT], max_answer_tokens=7)[0]
    assert len(short["text"]) <= 7


def test_char_spans_of_byte_and_sentencepiece_tokens(tmp_path):
    text = "Héllo wörld, to be or not to be"
    ids, starts, ends = qa.token_char_spans(ByteTokenizer(), text)
    assert len(ids) == len(text.encode("utf-8"))
    assert [text[s:e] for s, e in zip(starts, ends)][:3] == ["H", "é", "é"]
    tokenizer = SentencePieceTokenizer.train([text * 3, "to be or not"], str(tmp_path),
                                             vocab_size=20)
    ids, starts, ends = qa.token_char_spans(tokenizer, text)
    assert ids == tokenizer.tokenize(text).numpy().tolist()
    assert "".join(text[s:e] for s, e in zip(starts, ends)) == text
    assert all(s < e for s, e in zip(starts, ends))
    # Decoding trims the space a "▁word" piece carries.
    example = {"question": "q", "context": text}
    arrays, windows = qa.qa_windows([example], tokenizer, 64)
    start = np.zeros(arrays["token_ids"].shape)
    end = np.zeros(arrays["token_ids"].shape)
    word = next(i for i, (s, e) in enumerate(zip(starts, ends)) if text[s] == " ")
    offset = windows[0]["offset"]
    start[0, offset + word], end[0, offset + word] = 5.0, 5.0
    answer = qa.best_spans(start, end, windows, [text])[0]
    assert answer["text"] == text[starts[word]:ends[word]].strip()
    assert not answer["text"].startswith(" ")


def test_answer_spans_round_trip_through_windows():
    # Random unicode contexts and answers, byte tokens (several a character): in every window
    # that holds the whole answer, its labels decode (`best_spans`) to exactly the answer's
    # characters; every other window is labeled [CLS] and indeed lacks a token of the answer.
    rng = np.random.default_rng(3)
    tokenizer = ByteTokenizer()
    alphabet = list("abcé üß漢字!?.")
    labeled = 0
    for _ in range(150):
        context = "".join(rng.choice(alphabet, rng.integers(1, 50)))
        start = int(rng.integers(len(context)))
        end = int(rng.integers(start + 1, min(len(context), start + 8) + 1))
        if not context[start:end].strip():
            continue
        # best_spans trims white space off an answer's ends (SentencePiece "▁word" pieces).
        start += len(context[start:end]) - len(context[start:end].lstrip())
        end -= len(context[start:end]) - len(context[start:end].rstrip())
        sequence_length, stride = int(rng.integers(12, 30)), int(rng.integers(1, 7))
        example = {"question": "q?", "context": context,
                   "answers": [{"text": context[start:end], "answer_start": start}]}
        arrays, windows = qa.qa_windows([example], tokenizer, sequence_length, stride=stride)
        context_tokens = len(windows[0]["starts"])
        window_length = sequence_length - windows[0]["offset"] - 1
        answer_tokens = [k for k in range(context_tokens)
                         if windows[0]["ends"][k] > start and windows[0]["starts"][k] < end]
        assert windows[-1]["context_start"] + windows[-1]["length"] == context_tokens
        for a, b in zip(windows, windows[1:]):  # windows overlap by L - stride (last: more)
            assert b["context_start"] - a["context_start"] == min(
                stride, context_tokens - window_length - a["context_start"])
        for row, window in enumerate(windows):
            first, last = window["context_start"], window["context_start"] + window["length"]
            inside = first <= answer_tokens[0] and answer_tokens[-1] < last
            start_position = arrays["start_positions"][row]
            end_position = arrays["end_positions"][row]
            if not inside:
                assert start_position == end_position == 0
                continue
            labeled += 1
            logits = np.full((2, 1, sequence_length), -10.0)
            logits[0, 0, start_position] = logits[1, 0, end_position] = 10.0
            best = qa.best_spans(logits[0], logits[1], [window], [context], max_answer_tokens=64)
            assert (best[0]["start_char"], best[0]["end_char"]) == (start, end)
            row_ids = arrays["token_ids"][row, start_position:end_position + 1]
            assert tokenizer.detokenize(row_ids).numpy().decode() == context[start:end]
    assert labeled > 100


def test_qa_windows_bad_input_names_the_problem(char_tokenizer):
    def windows(answers=None, question="b?", sequence_length=13, **kwargs):
        example = {"question": question, "context": CONTEXT}
        if answers is not None:
            example["answers"] = answers
        return qa.qa_windows([example], char_tokenizer, sequence_length, **kwargs)

    # Once, an answer_start that did not match the text labeled the wrong characters.
    with pytest.raises(ValueError, match=r"answer 'hij' is not at answer_start=3 .*'def'"):
        windows([{"text": "hij", "answer_start": 3}], stride=4)
    with pytest.raises(ValueError, match="answer text is empty"):
        windows([{"text": "", "answer_start": 3}], stride=4)
    with pytest.raises(ValueError, match=r"20-token question .* sequence_length > 23"):
        windows(question="a" * 20, stride=4)
    with pytest.raises(ValueError, match=r"stride=4 is larger than the 1 context tokens .* "
                                         r"9-token question"):
        windows(question="a" * 9, stride=4)
    with pytest.raises(ValueError, match="max_question_tokens must be an int >= 1"):
        windows(stride=4, max_question_tokens=0)
    # The question cut to max_question_tokens leaves room: no error, 2 question tokens.
    assert windows(question="a" * 20, stride=4, max_question_tokens=2)[1][0]["offset"] == 4
