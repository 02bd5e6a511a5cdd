"""Fixtures shared by the tokenizer tests: sample texts, a small corpus, equivalence checks."""

import numpy as np
import pytest
import tensorflow as tf

# Words with non-ASCII letters (2-, 3- and 4-byte UTF-8) so every tokenizer meets them.
_WORDS = (
    "the king queen lord lady good night day sweet love death life heaven earth fair "
    "noble brother sister father mother son daughter heart blood speak hear tell know "
    "come go stay give take make think look sleep dream night morning evening friend "
    "enemy honour grace sword crown throne castle garden river forest storm sea ship "
    "wind fire water stone gold silver iron bread wine music song dance letter word "
    "café naïve über smörgåsbord crème déjà façade jalapeño 東京 日本 🙂"
).split()


@pytest.fixture(scope="session")
def corpus():
    """A deterministic pseudo-English corpus: 600 lines of 3-12 words, blank lines between
    stanzas, so SentencePiece can learn a few hundred pieces in well under a second."""
    rng = np.random.default_rng(7)
    lines = []
    for i in range(600):
        words = rng.choice(_WORDS, size=rng.integers(3, 13))
        line = " ".join(words).capitalize() + rng.choice([".", ",", "!", "?", ";"])
        lines.append(line)
        if i % 8 == 7:
            lines.append("")
    return "\n".join(lines) + "\n"


@pytest.fixture
def sample_texts():
    """Texts of different lengths: ASCII, accents, CJK, emoji, newlines, spaces, empty."""
    return [
        "The king is dead.",
        "",
        "Café über naïve crème,\nsweet dreams 🙂",
        "  two  leading spaces and trailing  ",
        "東京 and 日本\n\nblank line above",
        "a",
    ]


@pytest.fixture
def assert_same_everywhere():
    """Checks that tokenize/detokenize give the same results eagerly, per scalar, inside
    `tf.data.Dataset.map` (scalar and batched elements) and inside a `tf.function`."""

    def check(tokenizer, texts):
        eager_ids = tokenizer.tokenize(texts)
        assert isinstance(eager_ids, tf.RaggedTensor)
        assert eager_ids.dtype == tf.int32
        expected = eager_ids.to_list()
        expected_text = tokenizer.detokenize(eager_ids).numpy().tolist()

        # One scalar at a time: an int32 [T] tensor and a scalar string back.
        for text, row, back in zip(texts, expected, expected_text):
            ids = tokenizer.tokenize(text)
            assert isinstance(ids, tf.Tensor) and ids.shape.rank == 1 and ids.dtype == tf.int32
            assert ids.numpy().tolist() == row
            assert tokenizer.detokenize(ids).numpy() == back

        # tf.data, scalar elements.
        dataset = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string))
        mapped = dataset.map(tokenizer.tokenize)
        assert [ids.numpy().tolist() for ids in mapped] == expected
        round_trip = dataset.map(lambda s: tokenizer.detokenize(tokenizer.tokenize(s)))
        assert [s.numpy() for s in round_trip] == expected_text

        # tf.data, batched elements: ragged out.
        batched = dataset.batch(len(texts)).map(tokenizer.tokenize)
        (batch,) = list(batched)
        assert batch.to_list() == expected

        # tf.function with an unknown batch size, and with a scalar.
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def batch_fn(strings):
            ids = tokenizer.tokenize(strings)
            return ids, tokenizer.detokenize(ids), tokenizer.detokenize(ids.to_tensor())

        ids, text, text_from_dense = batch_fn(tf.constant(texts, tf.string))
        assert ids.to_list() == expected
        assert text.numpy().tolist() == expected_text
        assert text_from_dense.numpy().tolist() == expected_text

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def scalar_fn(string):
            ids = tokenizer.tokenize(string)
            return ids, tokenizer.detokenize(ids)

        for text, row, back in zip(texts, expected, expected_text):
            ids, text_back = scalar_fn(tf.constant(text))
            assert ids.numpy().tolist() == row
            assert text_back.numpy() == back

    return check


class _Holder(tf.Module):
    """A module that owns a tokenizer and exposes string endpoints, as an export would."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, texts):
        ids = self.tokenizer.tokenize(texts)
        return {"values": ids.flat_values, "row_lengths": ids.row_lengths()}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def detokenize(self, ids):
        return self.tokenizer.detokenize(ids)


@pytest.fixture
def assert_saved_model_round_trip(tmp_path):
    """Saves a tf.Module holding the tokenizer with `tf.saved_model.save`, reloads it, and
    checks that the reloaded graph tokenizes and detokenizes `texts` identically."""

    def check(tokenizer, texts):
        path = str(tmp_path / "saved_model")
        tf.saved_model.save(_Holder(tokenizer), path)
        reloaded = tf.saved_model.load(path)
        expected = tokenizer.tokenize(texts)
        out = reloaded.tokenize(tf.constant(texts, tf.string))
        got = tf.RaggedTensor.from_row_lengths(out["values"], out["row_lengths"])
        assert got.to_list() == expected.to_list()
        dense = expected.to_tensor(default_value=tokenizer.pad_id)
        np.testing.assert_array_equal(
            reloaded.detokenize(dense).numpy(), tokenizer.detokenize(dense).numpy()
        )

    return check
