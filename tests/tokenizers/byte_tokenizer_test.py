import pytest
import tensorflow as tf

from keras_lm.tokenizers import ByteTokenizer
from keras_lm.tokenizers import load_tokenizer
from keras_lm.tokenizers import non_core_ops


def reference_ids(text):
    """UTF-8 bytes shifted past the 3 specials."""
    return [b + 3 for b in text.encode("utf-8")]


def test_ids_and_vocabulary():
    tokenizer = ByteTokenizer()
    assert tokenizer.vocabulary_size == 259
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (
        0,
        None,
        1,
        2,
    )
    assert tokenizer.special_ids == [0, 1, 2]


def test_tokenize_is_utf8_bytes(sample_texts):
    tokenizer = ByteTokenizer()
    ids = tokenizer.tokenize(sample_texts)
    assert ids.to_list() == [reference_ids(t) for t in sample_texts]
    # Every byte value is reachable and never unknown.
    all_bytes = tf.constant(bytes(range(256)))
    assert tokenizer.tokenize(all_bytes).numpy().tolist() == list(range(3, 259))


def test_round_trip(sample_texts):
    tokenizer = ByteTokenizer()
    back = tokenizer.detokenize(tokenizer.tokenize(sample_texts)).numpy().tolist()
    assert back == [t.encode("utf-8") for t in sample_texts]
    assert tokenizer.detokenize(tokenizer.tokenize("")).numpy() == b""


def test_detokenize_allows_invalid_utf8_and_drops_specials_and_bad_ids():
    tokenizer = ByteTokenizer()
    # The first byte of "é" alone (0xC3), between bos/eos and padding.
    ids = [1, 0xC3 + 3, ord("x") + 3, 2, 0, 0]
    assert tokenizer.detokenize(ids).numpy() == b"\xc3x"
    assert tokenizer.detokenize([ord("a") + 3, 259, -1, 1000, ord("b") + 3]).numpy() == b"ab"


def test_same_results_eagerly_in_tf_data_and_tf_function(sample_texts, assert_same_everywhere):
    assert_same_everywhere(ByteTokenizer(), sample_texts)


def test_graph_uses_only_core_tf_ops():
    tokenizer = ByteTokenizer()

    @tf.function
    def round_trip(texts):
        return tokenizer.detokenize(tokenizer.tokenize(texts))

    function = round_trip.get_concrete_function(tf.TensorSpec([None], tf.string))
    assert non_core_ops(function) == []


def test_save_load_round_trip(tmp_path, sample_texts):
    tokenizer = ByteTokenizer()
    tokenizer.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, ByteTokenizer)
    assert loaded.tokenize(sample_texts).to_list() == tokenizer.tokenize(sample_texts).to_list()
    assert ByteTokenizer.from_config(tokenizer.get_config()).vocabulary_size == 259


def test_saved_model_round_trip(sample_texts, assert_saved_model_round_trip):
    assert_saved_model_round_trip(ByteTokenizer(), sample_texts)


def test_id_to_token_and_token_to_id_are_inverse():
    tokenizer = ByteTokenizer()
    for token_id in range(tokenizer.vocabulary_size):
        assert tokenizer.token_to_id(tokenizer.id_to_token(token_id)) == token_id
    assert tokenizer.id_to_token(ord("A") + 3) == "A"
    assert tokenizer.id_to_token(0xC3 + 3) == "<0xC3>"
    assert tokenizer.token_to_id("\n") == ord("\n") + 3


def test_bad_tokens():
    tokenizer = ByteTokenizer()
    with pytest.raises(ValueError, match="token_id"):
        tokenizer.id_to_token(259)
    with pytest.raises(ValueError, match="token"):
        tokenizer.token_to_id("é")
