"""Every file reader of keras_lm.data: a UTF-8 byte-order mark is dropped, not read as text, and
a file that is not UTF-8 is refused with its name."""
import json

import pytest

from keras_lm.data import labeled
from keras_lm.data import load_documents
from keras_lm.data import seq2seq

_SQUAD = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{
    "context": "Éire won.",
    "qas": [{"id": "q1", "question": "Who won?",
             "answers": [{"text": "Éire", "answer_start": 0}]}]}]}]}

# name -> (file text, reader of a path)
_READERS = {
    "doc.txt": ("Thou art more lovely", lambda path: load_documents(path)),
    "rows.tsv": ("text\tlabel\nÉire\tpos\n",
                 lambda path: labeled.load_labeled(path, "train")),
    "rows.jsonl": ('{"text": "Éire", "label": "pos"}\n',
                   lambda path: labeled.load_labeled(path, "train")),
    "tags.conll": ("Éire NNP B-LOC\n", lambda path: labeled.load_tagged(path, "train")),
    "squad.json": (json.dumps(_SQUAD, ensure_ascii=False), lambda path: labeled.load_squad(path, "train")),
    "pairs.tsv": ("Éire\tIreland\n", lambda path: seq2seq.load_pairs(path, "train")),
}


@pytest.mark.parametrize("name", sorted(_READERS))
def test_a_byte_order_mark_is_dropped(tmp_path, name):
    text, read = _READERS[name]
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    plain.mkdir(), marked.mkdir()
    (plain / name).write_text(text, encoding="utf-8")
    (marked / name).write_text(text, encoding="utf-8-sig")  # writes EF BB BF first
    assert (marked / name).read_bytes()[:3] == b"\xef\xbb\xbf"
    expected = read(str(plain / name))
    assert expected  # the reader found something to compare
    assert read(str(marked / name)) == expected
    assert "\ufeff" not in repr(read(str(marked / name)))


@pytest.mark.parametrize("name", sorted(_READERS))
def test_a_file_that_is_not_utf8_is_named(tmp_path, name):
    text, read = _READERS[name]
    (tmp_path / name).write_bytes(text.replace("Thou", "Thé").encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{name}.*not valid UTF-8.*Re-encode"):
        read(str(tmp_path / name))
