import collections
import pathlib
from unittest import mock

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from pydoc_data.topics import topics

from keras_lm.data import is_split_aware
from keras_lm.data import load_documents
from keras_lm.data import pydoc_documents
from keras_lm.data import text_dataset
from keras_lm.data import SPLITS


def _strings(dataset):
    return [text.decode("utf-8") for text in dataset.as_numpy_iterator()]


# ---------------------------------------------------------------------------------------------
# builtin:pydoc


def test_pydoc_splits_follow_the_rule_and_are_disjoint():
    names = sorted(topics)
    by_split = {split: load_documents("builtin:pydoc", split) for split in SPLITS}
    assert by_split["validation"] == [topics[n] for n in names[0::10]]
    assert by_split["test"] == [topics[n] for n in names[1::10]]
    assert len(by_split["train"]) == len(names) - len(names[0::10]) - len(names[1::10])
    assert all(by_split[split] for split in SPLITS)
    # Disjoint and covering: every topic lands in exactly one split (a few topics share a
    # text, so count texts with multiplicity).
    seen = collections.Counter(text for split in SPLITS for text in by_split[split])
    assert seen == collections.Counter(topics.values())
    assert by_split["train"] == pydoc_documents("train")
    assert _strings(text_dataset("builtin:pydoc", "test")) == by_split["test"]


# ---------------------------------------------------------------------------------------------
# Files, directories, globs, {split} and dict sources.


@pytest.fixture
def corpus_dir(tmp_path):
    (tmp_path / "b.txt").write_bytes("second\r\nline\n".encode("utf-8"))
    (tmp_path / "a.txt").write_bytes("first — naïve 日本\n".encode("utf-8"))
    (tmp_path / "notes.md").write_text("not a txt file")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("nested")
    return tmp_path


def test_file_directory_and_glob_sources(corpus_dir):
    a = "first — naïve 日本\n"
    b = "second\r\nline\n"  # bytes are kept: no newline translation
    assert load_documents(str(corpus_dir / "b.txt")) == [b]
    assert load_documents(str(corpus_dir)) == [a, b]  # sorted *.txt, not recursive
    assert load_documents(str(corpus_dir / "*.md")) == ["not a txt file"]
    assert load_documents(str(corpus_dir / "*" / "*.txt")) == ["nested"]
    assert _strings(text_dataset(str(corpus_dir))) == [a, b]


def test_split_placeholder_and_dict_sources(tmp_path):
    for split in SPLITS:
        (tmp_path / f"{split}.txt").write_text(f"text of {split}")
    placeholder = str(tmp_path / "{split}.txt")
    assert is_split_aware(placeholder) and not is_split_aware(str(tmp_path / "train.txt"))
    for split in SPLITS:
        assert load_documents(placeholder, split) == [f"text of {split}"]
    mapping = {"train": str(tmp_path / "test.txt"), "validation": str(tmp_path / "train.txt")}
    assert load_documents(mapping, "train") == ["text of test"]
    assert _strings(text_dataset(mapping, "validation")) == ["text of train"]
    # A split-free file source names the same documents whatever the split.
    assert load_documents(str(tmp_path / "test.txt"), "validation") == ["text of test"]


def test_file_source_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "blank.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    cases = [
        (str(tmp_path / "missing.txt"), FileNotFoundError, "missing.txt"),
        (str(tmp_path / "empty"), FileNotFoundError, r"no \*\.txt files"),
        (str(tmp_path / "*.nothing"), FileNotFoundError, r"No files match.*\*\.nothing"),
        (str(tmp_path / "blank.txt"), ValueError, "Empty corpus"),
        (str(tmp_path / "latin1.txt"), ValueError, "latin1.txt.*not valid UTF-8"),
        ({"train": str(tmp_path / "blank.txt")}, ValueError, "no split 'test'"),
    ]
    for source, error, message in cases:
        with pytest.raises(error, match=message):
            load_documents(source, "test")


def test_unknown_forms_and_bad_arguments():
    cases = [
        ("builtin:wikipedia", ValueError, r"source='builtin:wikipedia'.*builtin:pydoc"),
        ("hf:wikitext", ValueError, r"Unknown source form.*source='hf:wikitext'"),
        (42, TypeError, "source must be a str"),
        ("", ValueError, "source is empty"),
        (["a.txt"], TypeError, "source must be a str"),
    ]
    for source, error, message in cases:
        with pytest.raises(error, match=message):
            load_documents(source)
    with pytest.raises(ValueError, match="split='dev'.*train, validation, test"):
        load_documents("builtin:pydoc", "dev")
    with pytest.raises(ValueError, match=r"Unknown option.*data_dir"):
        load_documents("builtin:pydoc", "train", data_dir="/tmp")


# ---------------------------------------------------------------------------------------------
# TFDS: the real tfds.load code path on mock data; nothing is downloaded.


def test_tfds_source_with_mock_data(tmp_path):
    real_load = tfds.load
    with tfds.testing.mock_data(num_examples=6), mock.patch.object(
        tfds, "load", side_effect=real_load
    ) as load:
        documents = load_documents("tfds:imdb_reviews/train:text", data_dir=str(tmp_path))
        streamed = text_dataset("tfds:imdb_reviews/{split}:text", "test", data_dir=str(tmp_path))
        assert streamed.element_spec == tf.TensorSpec([], tf.string)
        streamed = _strings(streamed)
        sliced = load_documents("tfds:imdb_reviews/train[:50%]:text", data_dir=str(tmp_path))
    assert len(documents) == 6 and all(isinstance(d, str) and d for d in documents)
    assert len(streamed) == 6 and sliced  # (mock data ignores slices: it only sees the split)
    assert [c.args for c in load.call_args_list] == [
        ("imdb_reviews",), ("imdb_reviews",), ("imdb_reviews",)
    ]
    assert [c.kwargs["split"] for c in load.call_args_list] == ["train", "test", "train[:50%]"]
    for call in load.call_args_list:
        assert call.kwargs["download"] is False
        assert call.kwargs["data_dir"] == str(tmp_path)


def test_tfds_source_errors(tmp_path):
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ValueError, match=r"no feature 'body'.*\['label', 'text'\]"):
            load_documents("tfds:imdb_reviews/train:body", data_dir=str(tmp_path))
        with pytest.raises(ValueError, match="not a scalar tf.string"):
            load_documents("tfds:imdb_reviews/train:label", data_dir=str(tmp_path))
    for source in ["tfds:imdb_reviews", "tfds:imdb_reviews:text", "tfds:imdb_reviews/train"]:
        with pytest.raises(ValueError, match="tfds:NAME/SPLIT:FEATURE"):
            load_documents(source)
    # Not prepared in data_dir and download=False: a clear error, no download attempt.
    with pytest.raises(FileNotFoundError, match=r"not prepared.*download=True"):
        load_documents("tfds:imdb_reviews/train:text", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="TFDS could not load"):
        load_documents("tfds:no_such_dataset_xyz/train:text", data_dir=str(tmp_path))
    assert not any(pathlib.Path(tmp_path).iterdir())  # nothing was written, nothing downloaded


def test_tfds_split_of_only_empty_documents_is_refused():
    empty = tf.data.Dataset.from_tensor_slices({"text": [b"", b"", b""]})
    with mock.patch.object(tfds, "load", return_value=empty):
        for read in (load_documents, text_dataset):
            with pytest.raises(ValueError, match=r"Empty corpus.*tfds:x/train:text.*3 document"):
                read("tfds:x/train:text")
    # One non-empty document is enough, wherever it is; the stream is returned whole.
    late = tf.data.Dataset.from_tensor_slices({"text": [b"", b"", b"late"]})
    with mock.patch.object(tfds, "load", return_value=late):
        assert _strings(text_dataset("tfds:x/train:text")) == ["", "", "late"]


def test_tfds_text_that_is_not_utf8_names_the_source():
    examples = tf.data.Dataset.from_tensor_slices({"text": [b"ok", b"caf\xe9"]})
    with mock.patch.object(tfds, "load", return_value=examples):
        with pytest.raises(ValueError, match=r"example 1 of 'tfds:x/train:text'.*not valid UTF-8"):
            load_documents("tfds:x/train:text")
        # Streaming keeps the bytes as they are (tokenizers map bad bytes to unk/bytes).
        assert list(text_dataset("tfds:x/train:text").as_numpy_iterator()) == [b"ok", b"caf\xe9"]


class KerasLmTinyText(tfds.core.GeneratorBasedBuilder):
    """A real (prepared, not mocked) TFDS dataset with splits train and test only."""

    VERSION = tfds.core.Version("1.0.0")
    # No checksums file to look up beside the code (TFDS's lookup needs importlib_resources).
    code_path = None

    def _info(self):
        features = tfds.features.FeaturesDict({"text": tfds.features.Text(), "n": tf.int64})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(["hello world", "naïve café"]),
            "test": self._generate_examples(["bye"]),
        }

    def _generate_examples(self, texts):
        for index, text in enumerate(texts):
            yield index, {"text": text, "n": index}


def test_tfds_wrong_split_and_feature_on_a_prepared_dataset(tmp_path):
    # Mock data accepts any split name; a prepared dataset checks it as TFDS really does.
    from keras_lm.data import build_lm_datasets
    from keras_lm.tokenizers import ByteTokenizer

    KerasLmTinyText(data_dir=str(tmp_path)).download_and_prepare()
    options = {"data_dir": str(tmp_path)}
    assert load_documents("tfds:keras_lm_tiny_text/train:text", **options) == [
        "hello world", "naïve café"
    ]
    assert load_documents("tfds:keras_lm_tiny_text/train[1:]:text", **options) == ["naïve café"]
    for load in (load_documents, text_dataset):
        with pytest.raises(ValueError, match=r"split='validation'.*\['train', 'test'\]"):
            load("tfds:keras_lm_tiny_text/validation:text", **options)
        with pytest.raises(ValueError, match=r"no feature 'txt'.*\['n', 'text'\]"):
            load("tfds:keras_lm_tiny_text/train:txt", **options)
        with pytest.raises(ValueError, match="n is .*int64.*not a scalar tf.string"):
            load("tfds:keras_lm_tiny_text/train:n", **options)
    config = {"source": "tfds:keras_lm_tiny_text/{split}:text", "sequence_length": 2,
              "source_options": options}
    with pytest.raises(ValueError, match=r"split='validation'.*\['train', 'test'\]"):
        build_lm_datasets(config, ByteTokenizer(), 2)
