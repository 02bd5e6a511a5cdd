"""Character (Unicode code point) tokenizer with a vocabulary fitted on a corpus."""

import collections
import json
import os

import tensorflow as tf

from keras_lm.tokenizers.tokenizer import Tokenizer

VOCABULARY_JSON = "vocabulary.json"
SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
REPLACEMENT_CHARACTER = "\ufffd"
_INVALID_UTF8 = 0xD800  # a surrogate: never a decoded character, refused in vocabularies


class CharTokenizer(Tokenizer):
    """One id per Unicode code point, from a fixed character vocabulary.

    Ids: `<pad>`=0, `<unk>`=1, `<bos>`=2, `<eos>`=3, then `characters[i]` = 4 + i.
    A character outside the vocabulary (or an invalid UTF-8 byte) becomes `unk_id`;
    `detokenize` renders `unk_id` as U+FFFD ("\\ufffd") and drops pad/bos/eos.

    Text is split into code points with `tf.strings.unicode_decode` and looked up in a
    `tf.lookup.StaticHashTable`; detokenizing gathers from a constant string table. These are
    core TensorFlow ops, so exported graphs run in a stock TF Serving without custom ops.

    Shapes: B batch size, T characters of one text.

    Args:
        characters: sequence of distinct single-character python strings, in id order
            (use `CharTokenizer.fit` to take them from a corpus).

    Example:
    >>> tokenizer = CharTokenizer.fit(["hello world"])
    >>> tokenizer.vocabulary_size  # 4 specials + " dehlorw"
    12
    >>> tokenizer.tokenize("hold").numpy()
    array([7, 9, 8, 5], dtype=int32)
    >>> tokenizer.detokenize([7, 9, 8, 5, 3, 0]).numpy().decode()
    'hold'
    """

    def __init__(self, characters):
        super().__init__()
        self.characters = tuple(_check_characters(characters))
        num_specials = len(SPECIAL_TOKENS)
        token_to_id = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        token_to_id.update({c: num_specials + i for i, c in enumerate(self.characters)})
        self._token_to_id = token_to_id
        code_points = tf.constant([ord(c) for c in self.characters], tf.int64)
        ids = tf.range(num_specials, num_specials + len(self.characters), dtype=tf.int32)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(code_points, ids), default_value=self.unk_id
        )
        # The text of each id: specials other than unk are empty, so joining drops them.
        surface = ["", REPLACEMENT_CHARACTER, "", ""] + list(self.characters)
        self._surface = tf.constant(surface, tf.string)

    @classmethod
    def fit(cls, texts, min_count=1):
        """Builds the vocabulary from a corpus: its sorted set of characters.

        Args:
            texts: iterable of python `str` (a single `str` also works).
            min_count: int >= 1, characters seen fewer times than this are left out (they
                will tokenize to `unk_id`). Default 1 keeps every character.

        Returns:
            A `CharTokenizer`.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"`min_count` must be an int >= 1. Received: min_count={min_count!r}.")
        if isinstance(texts, str):
            texts = [texts]
        counts = collections.Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(
                    f"`texts` must hold python str. Received an item of type {type(text).__name__}."
                )
            counts.update(text)
        characters = sorted(c for c, n in counts.items() if n >= min_count)
        if not characters:
            raise ValueError(
                "`texts` gave no characters to build a vocabulary from (empty corpus, or "
                f"min_count={min_count} too high). Pass a non-empty corpus."
            )
        return cls(characters)

    # ---- in graph -----------------------------------------------------------------------

    def _tokenize_batch(self, texts):
        # Invalid UTF-8 decodes to a lone surrogate, which no vocabulary holds, so it becomes
        # unk_id even when U+FFFD (the op's default replacement) is a vocabulary character.
        code_points = tf.strings.unicode_decode(
            texts, "UTF-8", errors="replace", replacement_char=_INVALID_UTF8
        )  # int32 [B, None]
        return code_points.with_flat_values(
            self._table.lookup(tf.cast(code_points.flat_values, tf.int64))
        )

    def _detokenize_batch(self, ids):
        flat = ids.flat_values
        in_range = (flat >= 0) & (flat < self.vocabulary_size)
        flat = tf.where(in_range, flat, self.unk_id)
        pieces = ids.with_flat_values(tf.gather(self._surface, flat))  # string [B, None]
        return tf.strings.reduce_join(pieces, axis=-1)

    # ---- python side --------------------------------------------------------------------

    @property
    def vocabulary_size(self):
        return len(SPECIAL_TOKENS) + len(self.characters)

    @property
    def unk_id(self):
        return 1

    @property
    def bos_id(self):
        return 2

    @property
    def eos_id(self):
        return 3

    @property
    def vocabulary(self):
        """Every token in id order, specials first."""
        return list(SPECIAL_TOKENS) + list(self.characters)

    def id_to_token(self, token_id):
        if not 0 <= int(token_id) < self.vocabulary_size:
            raise ValueError(
                f"`token_id` must be in [0, {self.vocabulary_size}). Received: token_id={token_id}."
            )
        return self.vocabulary[int(token_id)]

    def token_to_id(self, token):
        """The id of a character or special token; an unknown character gives `unk_id`."""
        if token in self._token_to_id:
            return self._token_to_id[token]
        if isinstance(token, str) and len(token) == 1:
            return self.unk_id
        raise ValueError(
            "`token` must be one character or one of "
            f"{list(SPECIAL_TOKENS)}. Received: token={token!r}."
        )

    def get_config(self):
        return {"characters": list(self.characters)}

    def _save_assets(self, directory):
        # JSON, not one character a line: "\n" and "\r" are characters too.
        with open(os.path.join(directory, VOCABULARY_JSON), "w", encoding="utf-8") as f:
            json.dump(self.vocabulary, f, ensure_ascii=False, indent=0)
        return {"vocabulary_file": VOCABULARY_JSON}

    @classmethod
    def _from_saved(cls, directory, config):
        path = os.path.join(directory, config["vocabulary_file"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CharTokenizer vocabulary file not found: {path!r}.")
        with open(path, encoding="utf-8") as f:
            vocabulary = json.load(f)
        if list(vocabulary[: len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
            raise ValueError(
                f"{path!r} must start with the special tokens {list(SPECIAL_TOKENS)}. "
                f"Received: {vocabulary[:len(SPECIAL_TOKENS)]!r}."
            )
        return cls(vocabulary[len(SPECIAL_TOKENS) :])


def _check_characters(characters):
    """Validates a character vocabulary; returns it as a list."""
    if isinstance(characters, str):
        raise TypeError(
            "`characters` must be a sequence of single characters, e.g. `sorted(set(text))`, "
            f"not one str. Received: characters={characters[:50]!r}."
        )
    characters = list(characters)
    if not characters:
        raise ValueError("`characters` must hold at least one character. Received: [].")
    seen = set()
    for c in characters:
        if not isinstance(c, str) or len(c) != 1:
            raise ValueError(
                f"Each entry of `characters` must be a single-character str. Received: {c!r}."
            )
        if 0xD800 <= ord(c) <= 0xDFFF:
            raise ValueError(
                "`characters` cannot hold a lone surrogate: it has no UTF-8 form. "
                f"Received: {c!r}."
            )
        if c in seen:
            raise ValueError(f"`characters` must be distinct. Received {c!r} twice.")
        seen.add(c)
    return characters
