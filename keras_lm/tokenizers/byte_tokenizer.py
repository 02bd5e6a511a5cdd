"""Byte-level tokenizer: the UTF-8 bytes of the text, never an unknown token."""

import string

import tensorflow as tf

from keras_lm.tokenizers.tokenizer import Tokenizer

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
NUM_BYTES = 256
# Bytes shown as themselves by `id_to_token`; the rest as "<0xNN>".
_PRINTABLE = frozenset(ord(c) for c in string.printable if c not in "\t\n\r\x0b\x0c")


class ByteTokenizer(Tokenizer):
    """One id per UTF-8 byte, plus pad/bos/eos; any string is representable.

    Ids: `<pad>`=0, `<bos>`=1, `<eos>`=2, then byte b = 3 + b, so `vocabulary_size` is 259.
    There is no unknown id (`unk_id` is None). `detokenize` joins the bytes back into a string
    (which may be invalid UTF-8 if the ids are, e.g. sampled ids cut inside a character),
    drops pad/bos/eos, and drops ids outside `0 .. 258`.

    Only core TensorFlow ops are used (byte split, decode_raw, gather, reduce_join), so
    exported graphs run in a stock TF Serving without custom ops.

    Shapes: B batch size, T bytes of one text.

    Example:
    >>> tokenizer = ByteTokenizer()
    >>> tokenizer.tokenize("é!").numpy()  # "é" is two UTF-8 bytes, 0xC3 0xA9
    array([198, 172,  36], dtype=int32)
    >>> tokenizer.detokenize([1, 198, 172, 36, 2]).numpy().decode()
    'é!'
    """

    def __init__(self):
        super().__init__()
        num_specials = len(SPECIAL_TOKENS)
        # The text of each id: specials are empty, so joining drops them.
        surface = [b""] * num_specials + [bytes([b]) for b in range(NUM_BYTES)]
        self._surface = tf.constant(surface, tf.string)
        self._num_specials = num_specials

    # ---- in graph -----------------------------------------------------------------------

    def _tokenize_batch(self, texts):
        pieces = tf.strings.bytes_split(texts)  # one-byte strings [B, None]
        byte_values = tf.reshape(tf.io.decode_raw(pieces.flat_values, tf.uint8), [-1])
        return pieces.with_flat_values(tf.cast(byte_values, tf.int32) + self._num_specials)

    def _detokenize_batch(self, ids):
        flat = ids.flat_values
        in_range = (flat >= 0) & (flat < self.vocabulary_size)
        flat = tf.where(in_range, flat, self.pad_id)  # out of range -> dropped like pad
        pieces = ids.with_flat_values(tf.gather(self._surface, flat))  # string [B, None]
        return tf.strings.reduce_join(pieces, axis=-1)

    # ---- python side --------------------------------------------------------------------

    @property
    def vocabulary_size(self):
        return len(SPECIAL_TOKENS) + NUM_BYTES

    @property
    def unk_id(self):
        return None

    @property
    def bos_id(self):
        return 1

    @property
    def eos_id(self):
        return 2

    def id_to_token(self, token_id):
        """The token of an id: a special name, a printable ASCII char, or "<0xNN>"."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocabulary_size:
            raise ValueError(
                f"`token_id` must be in [0, {self.vocabulary_size}). Received: token_id={token_id}."
            )
        if token_id < self._num_specials:
            return SPECIAL_TOKENS[token_id]
        byte = token_id - self._num_specials
        return chr(byte) if byte in _PRINTABLE else f"<0x{byte:02X}>"

    def token_to_id(self, token):
        """The id of a special name, a single ASCII character, or a "<0xNN>" byte."""
        if token in SPECIAL_TOKENS:
            return SPECIAL_TOKENS.index(token)
        if isinstance(token, str) and len(token) == 1 and ord(token) < 128:
            return self._num_specials + ord(token)
        if (
            isinstance(token, str)
            and len(token) == 6
            and token.startswith("<0x")
            and token.endswith(">")
            and all(c in string.hexdigits for c in token[3:5])
        ):
            return self._num_specials + int(token[3:5], 16)
        raise ValueError(
            f"`token` must be one of {list(SPECIAL_TOKENS)}, a single ASCII character or a "
            f'byte written "<0xNN>". Received: token={token!r}.'
        )
