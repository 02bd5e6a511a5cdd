"""The interface every keras_lm tokenizer shares: strings in, int32 ids out, in graph."""

import json
import os
import shutil
import uuid

import tensorflow as tf

TOKENIZER_JSON = "tokenizer.json"


class Tokenizer(tf.Module):
    """Base class of keras_lm tokenizers: text <-> int32 ids with TensorFlow ops only.

    A tokenizer is a `tf.Module`, so its lookup tables or model protos are tracked and travel
    inside any SavedModel that holds it. `tokenize` and `detokenize` are plain TensorFlow code:
    they run eagerly, inside `tf.data.Dataset.map` and inside `tf.function` graphs, never
    through `tf.py_function`.

    Shapes: B is the batch size, T the number of ids of one text (ragged across the batch).

    Conventions shared by all subclasses:
    - `pad_id` is 0; ids are `0 .. vocabulary_size - 1`.
    - `eos_id` doubles as the document separator when documents are packed.
    - `detokenize` drops pad/bos/eos from the text and renders the unknown id (where there
      is one) as U+FFFD, the Unicode replacement character.

    Subclasses implement `_tokenize_batch`, `_detokenize_batch`, `id_to_token`,
    `token_to_id`, `get_config`, `_save_assets` and `_from_saved`, and set the id properties.

    Example:
    >>> tokenizer = keras_lm.tokenizers.ByteTokenizer()
    >>> ids = tokenizer.tokenize("hi")            # int32 [T]
    >>> batch = tokenizer.tokenize(["hi", "yo!"])  # int32 RaggedTensor [B, None]
    >>> tokenizer.detokenize(ids).numpy()
    b'hi'
    """

    # ---- the in-graph core (subclasses) -------------------------------------------------

    def _tokenize_batch(self, texts):
        """tf.string [B] -> int32 RaggedTensor [B, None]."""
        raise NotImplementedError

    def _detokenize_batch(self, ids):
        """int32 RaggedTensor [B, None] -> tf.string [B]."""
        raise NotImplementedError

    # ---- public API ---------------------------------------------------------------------

    def tokenize(self, texts):
        """Turns text into ids.

        Args:
            texts: a `tf.string` scalar or python `str`, or a `tf.string` [B] tensor, numpy
                array or list of python `str`.

        Returns:
            For a scalar, an int32 [T] tensor; for a batch, an int32 `tf.RaggedTensor`
            [B, None]. No bos/eos is added.
        """
        texts = _as_string_tensor(texts)
        rank = texts.shape.rank
        if rank == 0:
            return self._tokenize_batch(tf.expand_dims(texts, 0))[0]
        if rank == 1:
            return self._tokenize_batch(texts)
        raise ValueError(
            "`texts` must be a scalar string or a [B] vector of strings; reshape it first, "
            f"e.g. `tf.reshape(texts, [-1])`. Received: texts with shape {texts.shape}."
        )

    def detokenize(self, ids):
        """Turns ids back into text.

        Pad, bos and eos ids are dropped; the unknown id (if the tokenizer has one) becomes
        U+FFFD; ids outside `0 .. vocabulary_size - 1` are treated like the unknown id, or
        dropped where there is none (ByteTokenizer).

        Args:
            ids: integer ids: a [T] tensor / list, or a [B, T] dense tensor, `tf.RaggedTensor`
                [B, None] or list of lists. Dense rows may carry trailing `pad_id`s.

        Returns:
            A `tf.string` scalar for [T] input, a `tf.string` [B] tensor for batched input.
        """
        ids = _as_int_tensor(ids)
        if isinstance(ids, tf.RaggedTensor):
            if ids.shape.rank != 2:
                raise ValueError(
                    "A ragged `ids` must have shape [B, None]. "
                    f"Received: ids with shape {ids.shape}."
                )
            return self._detokenize_batch(ids)
        rank = ids.shape.rank
        if rank == 1:
            return self._detokenize_batch(tf.RaggedTensor.from_tensor(ids[tf.newaxis]))[0]
        if rank == 2:
            return self._detokenize_batch(tf.RaggedTensor.from_tensor(ids))
        raise ValueError(
            "`ids` must have shape [T] or [B, T]. "
            f"Received: ids with shape {ids.shape}."
        )

    @property
    def vocabulary_size(self):
        """The exact number of ids, specials included (the model's embedding rows)."""
        raise NotImplementedError

    @property
    def pad_id(self):
        """The padding id: 0 for every keras_lm tokenizer."""
        return 0

    @property
    def unk_id(self):
        """The id of unknown input, or None when every input is representable."""
        raise NotImplementedError

    @property
    def bos_id(self):
        """The beginning-of-sequence id."""
        raise NotImplementedError

    @property
    def eos_id(self):
        """The end-of-sequence id, also the document separator when packing."""
        raise NotImplementedError

    @property
    def special_ids(self):
        """Sorted ids that stand for no text: pad, unk (if any), bos, eos."""
        ids = [self.pad_id, self.unk_id, self.bos_id, self.eos_id]
        return sorted(i for i in ids if i is not None)

    def id_to_token(self, token_id):
        """The token (a python str) of one id, for debugging and display."""
        raise NotImplementedError

    def token_to_id(self, token):
        """The id (a python int) of one token string."""
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments, JSON-serializable: `type(self)(**get_config())`."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Rebuilds a tokenizer from `get_config()`."""
        return cls(**config)

    # ---- saving -------------------------------------------------------------------------

    def save(self, directory):
        """Writes `tokenizer.json` plus vocabulary/model files into `directory`.

        `keras_lm.tokenizers.load_tokenizer(directory)` reads it back.

        The files are written into a temporary sibling folder first. A new `directory` is
        that folder renamed into place, so a process killed while saving leaves either no
        `directory` or a complete one, never assets without `tokenizer.json`. Into an
        existing folder, its `tokenizer.json` is removed first and written last, so an
        interrupted save leaves a folder `load_tokenizer` refuses, not a mismatched pair.

        Args:
            directory: a folder; created if missing. Existing tokenizer files are replaced.
        """
        directory = os.path.normpath(os.fspath(directory))
        parent, name = os.path.split(directory)
        os.makedirs(parent or os.curdir, exist_ok=True)
        # os.mkdir (not tempfile.mkdtemp, whose folders are private) keeps the umask's mode.
        staging = os.path.join(parent, f".{name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.mkdir(staging)
        try:
            config = self._save_assets(staging)
            with open(os.path.join(staging, TOKENIZER_JSON), "w", encoding="utf-8") as f:
                json.dump({"class": type(self).__name__, "config": config}, f, indent=2)
            if os.path.isdir(directory):
                _move_files_into(staging, directory)
            else:
                os.replace(staging, directory)  # atomic: all the files appear at once
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # nothing left once renamed

    def _save_assets(self, directory):
        """Writes any vocabulary/model file; returns the config stored in tokenizer.json."""
        return self.get_config()

    @classmethod
    def _from_saved(cls, directory, config):
        """Rebuilds from `directory` and the config `_save_assets` returned."""
        return cls.from_config(config)

    @classmethod
    def load(cls, directory):
        """Loads a tokenizer saved with `save`, checking that it is a `cls`."""
        from keras_lm.tokenizers.builder import load_tokenizer

        tokenizer = load_tokenizer(directory)
        if not isinstance(tokenizer, cls):
            raise ValueError(
                f"{cls.__name__}.load found a {type(tokenizer).__name__} in {directory!r}; "
                "use keras_lm.tokenizers.load_tokenizer to load any tokenizer."
            )
        return tokenizer

    def __repr__(self):
        return f"{type(self).__name__}(vocabulary_size={self.vocabulary_size})"


def _move_files_into(staging, directory):
    """Moves a saved tokenizer's files into an existing folder, `tokenizer.json` last."""
    target_json = os.path.join(directory, TOKENIZER_JSON)
    if os.path.lexists(target_json):
        os.remove(target_json)  # until the new one lands, the folder reads as incomplete
    for entry in sorted(os.listdir(staging)):
        if entry != TOKENIZER_JSON:
            os.replace(os.path.join(staging, entry), os.path.join(directory, entry))
    os.replace(os.path.join(staging, TOKENIZER_JSON), target_json)


def _as_string_tensor(texts):
    """python str / list of str / numpy / tf.string tensor -> tf.string tensor."""
    if isinstance(texts, tf.RaggedTensor):
        raise TypeError(
            "`texts` must be a dense string scalar or [B] vector, not a RaggedTensor. "
            f"Received: texts={texts!r}."
        )
    if isinstance(texts, (tf.Tensor, tf.Variable)):
        if texts.dtype != tf.string:
            raise TypeError(
                f"`texts` must be tf.string. Received: texts with dtype {texts.dtype.name}."
            )
        return texts
    if isinstance(texts, (list, tuple)) and not texts:
        return tf.constant([], tf.string)
    try:
        return tf.convert_to_tensor(texts, dtype=tf.string)
    except (TypeError, ValueError) as e:
        bad = _first_text_without_utf8(texts)
        if bad is not None:
            raise ValueError(
                "`texts` holds a str with no UTF-8 form (a lone surrogate, e.g. from decoding "
                "bytes with errors='surrogateescape'); fix or drop those characters. "
                f"Received: {bad!r:.200}."
            ) from e
        raise TypeError(
            "`texts` must be a str, a list of str or a tf.string tensor. "
            f"Received: texts={texts!r:.200}."
        ) from e


def _first_text_without_utf8(texts):
    """The first python str of `texts` (a str or a flat sequence) that UTF-8 cannot encode."""
    items = [texts] if isinstance(texts, str) else texts
    try:
        items = list(items)
    except TypeError:
        return None
    for item in items:
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


def _as_int_tensor(ids):
    """ids as an int32 tf.Tensor or tf.RaggedTensor (lists of unequal rows become ragged)."""
    if isinstance(ids, tf.RaggedTensor):
        if not ids.dtype.is_integer:
            raise TypeError(f"`ids` must be integers. Received: ids with dtype {ids.dtype.name}.")
        return ids.with_flat_values(_to_int32(ids.flat_values))
    if isinstance(ids, (list, tuple)) and any(isinstance(row, (list, tuple)) for row in ids):
        return tf.ragged.constant(ids, dtype=tf.int32)
    if isinstance(ids, (list, tuple)) and not ids:
        return tf.constant([], tf.int32)
    ids = tf.convert_to_tensor(ids)
    if not ids.dtype.is_integer:
        raise TypeError(f"`ids` must be integers. Received: ids with dtype {ids.dtype.name}.")
    return _to_int32(ids)


def _to_int32(ids):
    """Casts integer ids to int32; ids beyond int32 become -1 (out of range) instead of
    wrapping around onto a valid id (int64 2**32 + 5 would otherwise read as id 5)."""
    if ids.dtype in (tf.int8, tf.int16, tf.int32, tf.uint8, tf.uint16):
        return tf.cast(ids, tf.int32)
    if ids.dtype == tf.uint64:
        fits = ids <= tf.constant(2**31 - 1, tf.uint64)
    else:  # int64, uint32
        wide = tf.cast(ids, tf.int64)
        fits = (wide >= -(2**31)) & (wide <= 2**31 - 1)
    return tf.where(fits, tf.cast(ids, tf.int32), -1)
