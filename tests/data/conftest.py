"""Tokenizers for the data tests."""

import pytest
import tensorflow as tf

from keras_lm.tokenizers import ByteTokenizer


class LetterTokenizer:
    """A stand-in with the tokenizer interface: 'a' -> 2, 'b' -> 3, ... (byte value - 95).

    Used where expected arrays are written by hand, so that they stay readable.
    """

    pad_id = 0
    eos_id = 1
    vocabulary_size = 28

    def tokenize(self, text):
        return tf.cast(tf.io.decode_raw(text, tf.uint8), tf.int32) - 95


@pytest.fixture
def letter_tokenizer():
    return LetterTokenizer()


@pytest.fixture
def byte_tokenizer():
    return ByteTokenizer()
