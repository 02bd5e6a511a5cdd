import json

import pytest
import tensorflow as tf

from keras_lm.tokenizers import CharTokenizer
from keras_lm.tokenizers import load_tokenizer
from keras_lm.tokenizers import non_core_ops

UNK_TEXT = "\ufffd"


def reference_ids(vocabulary, text):
    """Brute force: position of each code point in the vocabulary list, else unk (1)."""
    return [vocabulary.index(c) if c in vocabulary[4:] else 1 for c in text]


def test_fit_vocabulary_is_sorted_character_set_after_specials(corpus):
    tokenizer = CharTokenizer.fit([corpus])
    characters = sorted(set(corpus))
    assert tokenizer.vocabulary == ["<pad>", "<unk>", "<bos>", "<eos>"] + characters
    assert tokenizer.vocabulary_size == 4 + len(characters)
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert tokenizer.special_ids == [0, 1, 2, 3]
    assert "\n" in tokenizer.vocabulary and "🙂" in tokenizer.vocabulary


def test_tokenize_matches_code_point_reference_with_unknown_characters(corpus, sample_texts):
    tokenizer = CharTokenizer.fit([corpus])
    texts = sample_texts + ["Zebra§ quartz ✓ ĳ"]  # characters absent from the corpus
    ids = tokenizer.tokenize(texts)
    assert ids.to_list() == [reference_ids(tokenizer.vocabulary, t) for t in texts]
    # One id per code point (not per byte): the emoji is one id.
    assert ids.row_lengths().numpy().tolist() == [len(t) for t in texts]
    assert tokenizer.unk_id in ids[-1].numpy()


def test_round_trip_known_and_unknown_characters(corpus, sample_texts):
    tokenizer = CharTokenizer.fit([corpus])
    vocabulary = set(tokenizer.characters)
    texts = sample_texts + ["Zebra§ quartz ✓"]
    back = [s.decode("utf-8") for s in tokenizer.detokenize(tokenizer.tokenize(texts)).numpy()]
    assert back == ["".join(c if c in vocabulary else UNK_TEXT for c in t) for t in texts]
    assert back[: len(sample_texts)] == sample_texts  # all sample characters are known


def test_empty_string_and_empty_batch():
    tokenizer = CharTokenizer.fit(["ab"])
    assert tokenizer.tokenize("").numpy().tolist() == []
    assert tokenizer.detokenize(tokenizer.tokenize("")).numpy() == b""
    assert tokenizer.tokenize([]).to_list() == []
    assert tokenizer.detokenize(tf.zeros([0, 5], tf.int32)).numpy().tolist() == []


def test_detokenize_drops_specials_and_maps_bad_ids_to_replacement_character():
    tokenizer = CharTokenizer.fit(["ab"])
    a, b = tokenizer.token_to_id("a"), tokenizer.token_to_id("b")
    ids = [tokenizer.bos_id, a, tokenizer.unk_id, b, tokenizer.eos_id, 0, 0]
    assert tokenizer.detokenize(ids).numpy().decode() == "a" + UNK_TEXT + "b"
    out_of_range = [a, tokenizer.vocabulary_size, -3, b]
    assert tokenizer.detokenize(out_of_range).numpy().decode() == "a" + UNK_TEXT * 2 + "b"


def test_invalid_utf8_input_becomes_unk():
    tokenizer = CharTokenizer.fit(["ab"])
    ids = tokenizer.tokenize(tf.constant(b"a\xffb"))
    assert ids.numpy().tolist() == [tokenizer.token_to_id("a"), 1, tokenizer.token_to_id("b")]


def test_min_count_leaves_rare_characters_out():
    tokenizer = CharTokenizer.fit(["aaab", "ac"], min_count=2)
    assert tokenizer.characters == ("a",)
    assert tokenizer.tokenize("abc").numpy().tolist() == [4, 1, 1]


def test_same_results_eagerly_in_tf_data_and_tf_function(
    corpus, sample_texts, assert_same_everywhere
):
    assert_same_everywhere(CharTokenizer.fit([corpus]), sample_texts + ["unknown ✓"])


def test_graph_uses_only_core_tf_ops(corpus):
    tokenizer = CharTokenizer.fit([corpus])

    @tf.function
    def round_trip(texts):
        return tokenizer.detokenize(tokenizer.tokenize(texts))

    function = round_trip.get_concrete_function(tf.TensorSpec([None], tf.string))
    assert non_core_ops(function) == []


def test_save_load_round_trip_keeps_ids(tmp_path, corpus, sample_texts):
    tokenizer = CharTokenizer.fit([corpus + "\r\t\\\"'"])  # characters JSON must escape
    tokenizer.save(tmp_path / "tok")
    with open(tmp_path / "tok" / "tokenizer.json") as f:
        assert json.load(f)["class"] == "CharTokenizer"
    with open(tmp_path / "tok" / "vocabulary.json", encoding="utf-8") as f:
        assert json.load(f) == tokenizer.vocabulary  # id order, specials first
    loaded = load_tokenizer(tmp_path / "tok")
    assert isinstance(loaded, CharTokenizer)
    assert loaded.get_config() == tokenizer.get_config()
    assert CharTokenizer.load(tmp_path / "tok").vocabulary == tokenizer.vocabulary
    texts = sample_texts + ["\r\t\\\"'"]
    assert loaded.tokenize(texts).to_list() == tokenizer.tokenize(texts).to_list()


def test_config_round_trip():
    tokenizer = CharTokenizer.fit(["hello\nworld"])
    rebuilt = CharTokenizer.from_config(tokenizer.get_config())
    assert rebuilt.vocabulary == tokenizer.vocabulary


def test_saved_model_round_trip(corpus, sample_texts, assert_saved_model_round_trip):
    assert_saved_model_round_trip(CharTokenizer.fit([corpus]), sample_texts + ["unknown ✓"])


def test_id_to_token_and_token_to_id_are_inverse(corpus):
    tokenizer = CharTokenizer.fit([corpus])
    for token_id in range(tokenizer.vocabulary_size):
        assert tokenizer.token_to_id(tokenizer.id_to_token(token_id)) == token_id
    assert tokenizer.token_to_id("✓") == tokenizer.unk_id


@pytest.mark.parametrize(
    "characters, match",
    [
        (["a", "b", "a"], "distinct"),
        (["a", "bc"], "single-character"),
        ([], "at least one"),
        (["a", "\ud800"], "surrogate"),
    ],
)
def test_bad_vocabulary_is_rejected(characters, match):
    with pytest.raises(ValueError, match=match):
        CharTokenizer(characters)


def test_bad_fit_arguments():
    with pytest.raises(ValueError, match="min_count"):
        CharTokenizer.fit(["abc"], min_count=0)
    with pytest.raises(ValueError, match="texts"):
        CharTokenizer.fit([""])
    with pytest.raises(TypeError, match="characters"):
        CharTokenizer("abc")
    with pytest.raises(ValueError, match="token_id"):
        CharTokenizer.fit(["a"]).id_to_token(5)
    with pytest.raises(ValueError, match="token"):
        CharTokenizer.fit(["a"]).token_to_id("ab")


def test_missing_vocabulary_file_names_the_path(tmp_path):
    CharTokenizer.fit(["abc"]).save(tmp_path)
    (tmp_path / "vocabulary.json").unlink()
    with pytest.raises(FileNotFoundError, match="vocabulary.json"):
        load_tokenizer(tmp_path)


def test_invalid_utf8_is_unk_even_when_the_replacement_character_is_in_the_vocabulary():
    tokenizer = CharTokenizer(["a", "b", UNK_TEXT])
    a, b, fffd = (tokenizer.token_to_id(c) for c in ("a", "b", UNK_TEXT))
    assert fffd != tokenizer.unk_id
    # A real U+FFFD in the text is that vocabulary character; invalid bytes are unknown.
    texts = tf.constant([b"a\xffb", UNK_TEXT.encode(), b"\xed\xa0\x80a"])
    expected = [[a, 1, b], [fffd], [1, 1, 1, a]]
    assert tokenizer.tokenize(texts).to_list() == expected
    traced = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    assert traced(texts).to_list() == expected
