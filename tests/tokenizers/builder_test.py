import json

import ml_collections
import pytest
import sentencepiece

from keras_lm.tokenizers import ByteTokenizer
from keras_lm.tokenizers import CharTokenizer
from keras_lm.tokenizers import SentencePieceTokenizer
from keras_lm.tokenizers import from_config
from keras_lm.tokenizers import load_tokenizer


def test_char_from_config_dict_fits_on_texts(tmp_path, corpus):
    config = ml_collections.ConfigDict({"type": "char"})
    tokenizer = from_config(config, texts=[corpus], directory=tmp_path)
    assert isinstance(tokenizer, CharTokenizer)
    assert tokenizer.vocabulary == CharTokenizer.fit([corpus]).vocabulary
    assert load_tokenizer(tmp_path).vocabulary == tokenizer.vocabulary  # saved there


def test_char_min_count_from_plain_dict():
    tokenizer = from_config({"type": "char", "min_count": 2}, texts=["aab"])
    assert tokenizer.characters == ("a",)


def test_byte_from_config_needs_no_texts():
    tokenizer = from_config(ml_collections.FrozenConfigDict({"type": "byte"}))
    assert isinstance(tokenizer, ByteTokenizer) and tokenizer.vocabulary_size == 259


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_sentencepiece_from_config_trains_into_directory(tmp_path, corpus, model_type):
    config = ml_collections.ConfigDict(
        {
            "type": "sentencepiece",
            "vocab_size": 150,
            "model_type": model_type,
            "character_coverage": 1.0,
            "user_defined_symbols": ["<sep>"],
        }
    )
    tokenizer = from_config(config, texts=[corpus], directory=tmp_path)
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert tokenizer.vocabulary_size == 150
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    assert processor.piece_to_id("<sep>") == tokenizer.token_to_id("<sep>")
    texts = ["the king<sep>queen", "Café 🙂"]
    assert tokenizer.tokenize(texts).to_list() == [processor.encode(t) for t in texts]
    assert load_tokenizer(tmp_path).tokenize(texts).to_list() == tokenizer.tokenize(texts).to_list()
    # A config naming an existing model loads it instead of training.
    again = from_config({"type": "sentencepiece", "model_file": str(tmp_path / "spm.model")})
    assert again.model_proto == tokenizer.model_proto


def test_unknown_type_lists_valid_types():
    with pytest.raises(ValueError, match=r"type.*\['byte', 'char', 'sentencepiece'\].*'words'"):
        from_config({"type": "words"})
    with pytest.raises(ValueError, match="type"):
        from_config({})


def test_unknown_field_is_rejected():
    with pytest.raises(ValueError, match="vocab_sise"):
        from_config({"type": "sentencepiece", "vocab_sise": 100}, texts=["a"], directory="x")


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="texts"):
        from_config({"type": "char"})
    with pytest.raises(ValueError, match="directory"):
        from_config({"type": "sentencepiece", "vocab_size": 100}, texts=["a b c"])
    with pytest.raises(ValueError, match="vocab_size"):
        from_config({"type": "sentencepiece"}, texts=["a b c"], directory=tmp_path)


def test_sentencepiece_vocab_too_large_from_config(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        from_config(
            {"type": "sentencepiece", "vocab_size": 4000},
            texts=["to be or not to be\n"] * 10,
            directory=tmp_path,
        )


def test_load_missing_directory_names_the_path(tmp_path):
    missing = tmp_path / "no_such_tokenizer"
    with pytest.raises(FileNotFoundError, match="no_such_tokenizer"):
        load_tokenizer(missing)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path)  # exists, but holds no tokenizer.json


def test_load_unknown_class_is_rejected(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"class": "WordTokenizer", "config": {}}))
    with pytest.raises(ValueError, match="WordTokenizer"):
        load_tokenizer(tmp_path)


def test_class_load_checks_the_class(tmp_path):
    ByteTokenizer().save(tmp_path)
    assert isinstance(ByteTokenizer.load(tmp_path), ByteTokenizer)
    with pytest.raises(ValueError, match="ByteTokenizer"):
        CharTokenizer.load(tmp_path)


@pytest.mark.parametrize("content", ["{not json", '["CharTokenizer"]', b"\xff\xfe{}"])
def test_load_corrupt_tokenizer_json_names_the_path(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
