import os

import pytest
import sentencepiece
import tensorflow as tf

from keras_lm.tokenizers import SentencePieceTokenizer
from keras_lm.tokenizers import load_tokenizer
from keras_lm.tokenizers import non_core_ops

VOCAB_SIZE = 200


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def trained(request, corpus, tmp_path_factory):
    """(tokenizer, directory) for each model type, trained once per test module."""
    directory = tmp_path_factory.mktemp(f"spm_{request.param}")
    tokenizer = SentencePieceTokenizer.train(
        [corpus],
        directory,
        vocab_size=VOCAB_SIZE,
        model_type=request.param,
        user_defined_symbols=["<sep>"],
    )
    return tokenizer, directory


def python_processor(directory):
    """The reference: sentencepiece's own python processor on the written model file."""
    return sentencepiece.SentencePieceProcessor(model_file=str(directory / "spm.model"))


def test_train_writes_exact_vocabulary_with_fixed_specials(trained):
    tokenizer, directory = trained
    processor = python_processor(directory)
    assert tokenizer.vocabulary_size == VOCAB_SIZE == processor.vocab_size()
    assert [tokenizer.id_to_token(i) for i in range(4)] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert tokenizer.special_ids == [0, 1, 2, 3]
    assert (directory / "tokenizer.json").is_file()  # the directory loads as it is


def test_tokenize_matches_python_sentencepiece(trained, sample_texts):
    tokenizer, directory = trained
    processor = python_processor(directory)
    texts = sample_texts + ["Unseen: zebra ✓ quartz", "the king<sep>the queen"]
    assert tokenizer.tokenize(texts).to_list() == [processor.encode(t) for t in texts]


def test_round_trip_keeps_spaces_and_newlines(trained, sample_texts):
    tokenizer, _ = trained
    back = tokenizer.detokenize(tokenizer.tokenize(sample_texts)).numpy().tolist()
    assert [s.decode("utf-8") for s in back] == sample_texts
    # Newlines are learned characters, not unknown.
    assert tokenizer.unk_id not in tokenizer.tokenize("night\n\nday").numpy()


def test_unknown_characters_and_special_ids_in_detokenize(trained):
    tokenizer, directory = trained
    ids = tokenizer.tokenize("king ✓ queen").numpy().tolist()
    assert tokenizer.unk_id in ids
    assert tokenizer.detokenize(ids).numpy().decode() == "king \ufffd queen"
    with_specials = [tokenizer.bos_id] + ids + [tokenizer.eos_id, 0, 0]
    assert tokenizer.detokenize(with_specials).numpy().decode() == "king \ufffd queen"
    # Ids outside the vocabulary render as unknown instead of failing.
    king = tokenizer.tokenize("king").numpy().tolist()
    assert tokenizer.detokenize(king + [VOCAB_SIZE, -1]).numpy().decode() == "king\ufffd\ufffd"


def test_user_defined_symbols_stay_single_pieces(trained):
    tokenizer, directory = trained
    sep = tokenizer.token_to_id("<sep>")
    assert sep not in tokenizer.special_ids and tokenizer.id_to_token(sep) == "<sep>"
    pieces = python_processor(directory).encode("king<sep>queen <sep>", out_type=str)
    assert pieces.count("<sep>") == 2
    assert tokenizer.tokenize("king<sep>queen <sep>").numpy().tolist().count(sep) == 2


def test_same_results_eagerly_in_tf_data_and_tf_function(
    trained, sample_texts, assert_same_everywhere
):
    tokenizer, _ = trained
    assert_same_everywhere(tokenizer, sample_texts)


def test_graph_needs_tensorflow_text_ops(trained):
    # Documented: a SentencePiece graph is not core-TF only (TF Serving needs tf_text ops).
    tokenizer, _ = trained
    function = tf.function(tokenizer.tokenize).get_concrete_function(
        tf.TensorSpec([None], tf.string)
    )
    assert any(op.startswith("Sentencepiece") for op in non_core_ops(function))


def test_save_load_round_trip(trained, tmp_path, sample_texts):
    tokenizer, directory = trained
    tokenizer.save(tmp_path)
    for loaded in (load_tokenizer(tmp_path), load_tokenizer(directory)):
        assert isinstance(loaded, SentencePieceTokenizer)
        assert loaded.model_proto == tokenizer.model_proto
        assert loaded.tokenize(sample_texts).to_list() == tokenizer.tokenize(sample_texts).to_list()
    rebuilt = SentencePieceTokenizer.from_config(tokenizer.get_config())
    assert rebuilt.model_proto == tokenizer.model_proto


def test_saved_model_round_trip(trained, sample_texts, assert_saved_model_round_trip):
    tokenizer, _ = trained
    assert_saved_model_round_trip(tokenizer, sample_texts)


def test_training_from_files_equals_training_from_texts(corpus, tmp_path):
    half = len(corpus) // 2
    cut = corpus.index("\n", half) + 1  # files hold whole lines
    (tmp_path / "a.txt").write_text(corpus[:cut], encoding="utf-8")
    (tmp_path / "b.txt").write_text(corpus[cut:], encoding="utf-8")
    from_files = SentencePieceTokenizer.train(
        [tmp_path / "a.txt", str(tmp_path / "b.txt")], tmp_path / "files", vocab_size=120
    )
    from_texts = SentencePieceTokenizer.train(
        [corpus[:cut], corpus[cut:]], tmp_path / "texts", vocab_size=120
    )
    assert from_files.model_proto == from_texts.model_proto
    single_path = SentencePieceTokenizer.train(
        str(tmp_path / "a.txt"), tmp_path / "single", vocab_size=120
    )
    assert single_path.vocabulary_size == 120


def test_vocab_size_too_large_is_a_clear_error(tmp_path):
    texts = ["the king and the queen\n"] * 20
    with pytest.raises(ValueError, match=r"vocab_size.*at most \d+.*Received: vocab_size=5000"):
        SentencePieceTokenizer.train(texts, tmp_path, vocab_size=5000)
    with pytest.raises(ValueError, match=r"vocab_size.*at most \d+"):
        SentencePieceTokenizer.train(texts, tmp_path, vocab_size=5000, model_type="bpe")


def test_vocab_size_too_small_for_characters_is_a_clear_error(corpus, tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        SentencePieceTokenizer.train([corpus], tmp_path, vocab_size=20)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model_type": "word"}, "model_type"),
        ({"vocab_size": 3}, "vocab_size"),
        ({"character_coverage": 0.0}, "character_coverage"),
        ({"pad_id": 5}, "pad_id"),
    ],
)
def test_bad_training_arguments(tmp_path, kwargs, match):
    arguments = {"vocab_size": 100, **kwargs}
    with pytest.raises(ValueError, match=match):
        SentencePieceTokenizer.train(["some text"], tmp_path, **arguments)


def test_bad_training_inputs(tmp_path):
    with pytest.raises(ValueError, match="files_or_texts"):
        SentencePieceTokenizer.train([], tmp_path, vocab_size=100)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        SentencePieceTokenizer.train(str(tmp_path / "missing.txt"), tmp_path, vocab_size=100)
    with pytest.raises(TypeError, match="files_or_texts"):
        SentencePieceTokenizer.train([b"bytes"], tmp_path, vocab_size=100)


def test_missing_model_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.model"):
        SentencePieceTokenizer(tmp_path / "nothing.model")


def test_model_without_pad_zero_is_rejected(corpus, tmp_path):
    # sentencepiece's own defaults: unk=0, bos=1, eos=2, no pad.
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus.splitlines()),
        model_prefix=str(tmp_path / "default"),
        vocab_size=120,
        minloglevel=2,
    )
    with pytest.raises(ValueError, match="pad_id"):
        SentencePieceTokenizer(tmp_path / "default.model")


def test_survives_keras_clear_session(trained, sample_texts):
    # tensorflow_text's SentencePiece resource is kernel-owned: clear_session destroys it.
    import keras

    tokenizer, _ = trained
    expected = tokenizer.tokenize(sample_texts).to_list()
    keras.backend.clear_session()
    assert tokenizer.tokenize(sample_texts).to_list() == expected
    keras.backend.clear_session()
    traced = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    assert traced(tf.constant(sample_texts)).to_list() == expected
    keras.backend.clear_session()
    assert tokenizer.detokenize(expected).numpy().tolist() == [t.encode() for t in sample_texts]


def test_train_writes_model_and_json_together(corpus, tmp_path):
    """The model appears with its tokenizer.json (one rename), and the tokenizer points at it."""
    directory = tmp_path / "spm"
    tokenizer = SentencePieceTokenizer.train([corpus], directory, vocab_size=100)
    assert sorted(os.listdir(tmp_path)) == ["spm"]  # no staging folder left behind
    assert sorted(os.listdir(directory)) == ["spm.model", "tokenizer.json"]
    assert tokenizer.model_file == str(directory / "spm.model")
    assert load_tokenizer(directory).model_proto == tokenizer.model_proto
    tokenizer.save(tmp_path / "copy")  # its model file is the one in `directory`
    assert load_tokenizer(tmp_path / "copy").model_proto == tokenizer.model_proto


def test_save_writes_the_model_in_memory_not_the_file_on_disk(tmp_path):
    """Saving after the model file was overwritten (or deleted) keeps the tokenizer's model."""
    directory = tmp_path / "spm"
    first = SentencePieceTokenizer.train(
        ["the king and the queen\n" * 40], directory, vocab_size=17
    )
    first_ids = first.tokenize("the queen").numpy().tolist()
    second = SentencePieceTokenizer.train(["alpha beta gamma\n" * 40], directory, vocab_size=15)
    assert second.model_proto != first.model_proto  # directory/spm.model is now the second
    first.save(tmp_path / "first")
    loaded = load_tokenizer(tmp_path / "first")
    assert loaded.model_proto == first.model_proto
    assert loaded.tokenize("the queen").numpy().tolist() == first_ids
    (directory / "spm.model").unlink()
    second.save(tmp_path / "second")
    assert load_tokenizer(tmp_path / "second").model_proto == second.model_proto


def test_training_file_with_crlf_newlines_equals_training_on_its_text(tmp_path):
    """Files are read without newline translation, so "\\r" is learned as from a str text."""
    text = "the king\r\nthe queen\r\nnight and day\r\n" * 30
    (tmp_path / "crlf.txt").write_bytes(text.encode("utf-8"))
    from_file = SentencePieceTokenizer.train(tmp_path / "crlf.txt", tmp_path / "f", vocab_size=21)
    from_text = SentencePieceTokenizer.train([text], tmp_path / "t", vocab_size=21)
    assert from_file.model_proto == from_text.model_proto
    ids = from_file.tokenize("the king\r\n").numpy().tolist()
    assert from_file.unk_id not in ids
    assert ids == python_processor(tmp_path / "f").encode("the king\r\n")
    assert from_file.detokenize(ids).numpy().decode() == "the king\r\n"


def test_non_utf8_training_file_names_the_path(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait\n".encode("latin-1") * 10)
    with pytest.raises(ValueError, match=r"latin1\.txt.*not valid UTF-8"):
        SentencePieceTokenizer.train(path, tmp_path / "spm", vocab_size=20)
    with pytest.raises(ValueError, match=r"latin1\.txt.*not valid UTF-8"):
        SentencePieceTokenizer.train([str(path)], tmp_path / "spm", vocab_size=20)


def test_a_mistyped_path_in_a_list_is_not_trained_on_as_text(tmp_path):
    missing = str(tmp_path / "data" / "trian.txt")
    for files in ([missing], [missing, str(tmp_path / "b.txt")], ["train.txt"]):
        with pytest.raises(FileNotFoundError, match="not found.*tr(ia|ai)n.txt"):
            SentencePieceTokenizer.train(files, tmp_path / "spm", vocab_size=20)
    assert not (tmp_path / "spm").exists()
    # Texts are still texts, even with a slash or a dot in them.
    tokenizer = SentencePieceTokenizer.train(
        ["and/or the king.txt\n" * 20], tmp_path / "spm", vocab_size=20
    )
    assert tokenizer.unk_id not in tokenizer.tokenize("and/or").numpy()


def test_vocab_size_too_small_says_the_minimum(tmp_path):
    text = "abcdefghij klmnopqrst\n" * 20  # 20 letters, " " and "\n" + 4 specials = 26
    with pytest.raises(ValueError, match=r"at least 26 here.*Received: vocab_size=10"):
        SentencePieceTokenizer.train([text], tmp_path, vocab_size=10)
    assert SentencePieceTokenizer.train([text], tmp_path, vocab_size=26).vocabulary_size == 26
