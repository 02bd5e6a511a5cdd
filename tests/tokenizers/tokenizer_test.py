"""The shared `Tokenizer` input/output handling, exercised through ByteTokenizer."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_lm.tokenizers import ByteTokenizer
from keras_lm.tokenizers import Tokenizer


def test_tokenize_accepts_str_list_numpy_and_tensor():
    tokenizer = ByteTokenizer()
    expected = [[b + 3 for b in t.encode()] for t in ["ab", "ç"]]
    for texts in (["ab", "ç"], ("ab", "ç"), np.array(["ab", "ç"]), tf.constant(["ab", "ç"])):
        ids = tokenizer.tokenize(texts)
        assert isinstance(ids, tf.RaggedTensor) and ids.to_list() == expected
    scalar = tokenizer.tokenize("ab")
    assert isinstance(scalar, tf.Tensor) and scalar.numpy().tolist() == expected[0]
    assert tokenizer.tokenize(tf.constant("ab")).numpy().tolist() == expected[0]


def test_detokenize_accepts_lists_ragged_dense_and_int64():
    tokenizer = ByteTokenizer()
    a, b, c = (ord(x) + 3 for x in "abc")
    assert tokenizer.detokenize([[a, b], [c]]).numpy().tolist() == [b"ab", b"c"]
    ragged = tf.ragged.constant([[a, b], [], [c]], dtype=tf.int64)
    assert tokenizer.detokenize(ragged).numpy().tolist() == [b"ab", b"", b"c"]
    dense = np.array([[a, b, 0], [c, 0, 0]], np.int64)  # trailing pads
    assert tokenizer.detokenize(dense).numpy().tolist() == [b"ab", b"c"]
    assert tokenizer.detokenize(np.array([a, c])).numpy() == b"ac"
    assert tokenizer.detokenize([]).numpy() == b""


def test_bad_texts_name_the_argument():
    tokenizer = ByteTokenizer()
    with pytest.raises(ValueError, match="texts"):
        tokenizer.tokenize([["a", "b"], ["c", "d"]])
    with pytest.raises(TypeError, match="texts"):
        tokenizer.tokenize(tf.constant([1, 2]))
    with pytest.raises(TypeError, match="texts"):
        tokenizer.tokenize(tf.ragged.constant([["a"], []]))
    with pytest.raises(TypeError, match="texts"):
        tokenizer.tokenize([object()])


def test_bad_ids_name_the_argument():
    tokenizer = ByteTokenizer()
    with pytest.raises(ValueError, match="ids"):
        tokenizer.detokenize(tf.zeros([2, 2, 2], tf.int32))
    with pytest.raises(TypeError, match="ids"):
        tokenizer.detokenize(tf.constant([1.0, 2.0]))


def test_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        Tokenizer().tokenize("a")
    with pytest.raises(NotImplementedError):
        _ = Tokenizer().vocabulary_size


def test_char_and_byte_never_import_tensorflow_text(repo_root, tmp_path):
    # tensorflow_text is imported lazily by SentencePieceTokenizer only, so char/byte users
    # (and their exported graphs) do not depend on it. A fresh interpreter shows it.
    script = f"""
import sys
import keras_lm.tokenizers as tokenizers
char = tokenizers.CharTokenizer.fit(["abc"])
byte = tokenizers.ByteTokenizer()
for tokenizer in (char, byte):
    tokenizer.detokenize(tokenizer.tokenize(["ab", "c"]))
    tokenizer.save({str(tmp_path)!r} + "/" + type(tokenizer).__name__)
    tokenizers.load_tokenizer({str(tmp_path)!r} + "/" + type(tokenizer).__name__)
assert "tensorflow_text" not in sys.modules, "tensorflow_text was imported"
assert "sentencepiece" not in sys.modules, "sentencepiece was imported"
"""
    env = dict(os.environ, PYTHONPATH=str(repo_root), KERAS_BACKEND="tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=repo_root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_save_is_atomic_a_failure_leaves_no_partial_directory(tmp_path, monkeypatch):
    """A save interrupted after the assets (as by a kill) leaves no directory at all."""
    from keras_lm.tokenizers import CharTokenizer
    from keras_lm.tokenizers import load_tokenizer

    tokenizer = CharTokenizer.fit(["abc"])
    original = CharTokenizer._save_assets

    def assets_then_die(self, directory):
        original(self, directory)
        raise KeyboardInterrupt  # stands in for the kill between assets and tokenizer.json

    monkeypatch.setattr(CharTokenizer, "_save_assets", assets_then_die)
    with pytest.raises(KeyboardInterrupt):
        tokenizer.save(tmp_path / "tok")
    assert os.listdir(tmp_path) == []  # neither the directory nor a staging folder
    monkeypatch.undo()
    tokenizer.save(tmp_path / "tok")
    assert sorted(os.listdir(tmp_path)) == ["tok"]
    assert sorted(os.listdir(tmp_path / "tok")) == ["tokenizer.json", "vocabulary.json"]
    assert load_tokenizer(tmp_path / "tok").characters == ("a", "b", "c")


def test_save_into_an_existing_directory_replaces_the_tokenizer_and_keeps_other_files(tmp_path):
    from keras_lm.tokenizers import CharTokenizer
    from keras_lm.tokenizers import load_tokenizer

    (tmp_path / "notes.txt").write_text("mine")
    CharTokenizer.fit(["abc"]).save(tmp_path)
    CharTokenizer.fit(["xy"]).save(tmp_path)
    assert load_tokenizer(tmp_path).characters == ("x", "y")
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "tokenizer.json", "vocabulary.json"]


def test_detokenize_ids_beyond_int32_do_not_wrap_onto_valid_ids():
    # int64 2**32 + id would read as `id` after a plain cast to int32; it is out of range.
    tokenizer = ByteTokenizer()
    a, b = (ord(x) + 3 for x in "ab")
    wide = tf.constant([a, 2**32 + b, b, -(2**32) + a], tf.int64)
    assert tokenizer.detokenize(wide).numpy() == b"ab"  # out of range: dropped by ByteTokenizer
    ragged = tf.RaggedTensor.from_row_lengths(wide, [2, 2])
    assert tokenizer.detokenize(ragged).numpy().tolist() == [b"a", b"b"]
    assert tokenizer.detokenize(np.array([2**32 - 1, a], np.uint32)).numpy() == b"a"
    assert tokenizer.detokenize(np.array([2**63 + b, a], np.uint64)).numpy() == b"a"

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
    def in_graph(ids):
        return tokenizer.detokenize(ids)

    assert in_graph(wide).numpy() == b"ab"


def test_text_with_a_lone_surrogate_is_a_clear_error():
    tokenizer = ByteTokenizer()
    bad = b"caf\xe9".decode("utf-8", errors="surrogateescape")  # 'caf\udce9'
    for texts in (bad, ["ok", bad]):
        with pytest.raises(ValueError, match=r"no UTF-8 form.*caf\\udce9"):
            tokenizer.tokenize(texts)
