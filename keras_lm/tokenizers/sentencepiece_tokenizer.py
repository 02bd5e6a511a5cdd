"""SentencePiece (unigram or BPE) subword tokenizer: trained in python, applied in graph."""

import io
import os
import re
import tempfile

import tensorflow as tf

from keras_lm.tokenizers.tokenizer import Tokenizer

MODEL_FILE = "spm.model"
MODEL_TYPES = ("unigram", "bpe")
# Fixed special ids and pieces, the same convention as the other keras_lm tokenizers.
SPECIAL_PIECES = {
    "pad": (0, "<pad>"),
    "unk": (1, "<unk>"),
    "bos": (2, "<bos>"),
    "eos": (3, "<eos>"),
}
# SentencePiece drops sentences longer than `max_sentence_length` bytes; we feed chunks of
# whole lines below this size (keeping the newlines inside them, so "\n" is learned).
_CHUNK_BYTES = 4096
_MAX_SENTENCE_BYTES = 16384
# Defaults chosen so that detokenize(tokenize(text)) == text, in graph as in python:
# - "identity" normalization keeps the text (nmt_nfkc would turn "\n" into " ", fold width);
# - keep repeated/leading/trailing spaces;
# - no dummy "▁" prefix: tensorflow_text's decoder strips *every* leading space when the
#   model adds one (the python processor strips only one), so " x" would come back as "x".
_DEFAULT_TRAINER_OPTIONS = {
    "normalization_rule_name": "identity",
    "remove_extra_whitespaces": False,
    "add_dummy_prefix": False,
    "unk_surface": "\ufffd",
}
# Options that `train` sets itself and must not be overridden.
_RESERVED_OPTIONS = frozenset(
    ["input", "model_prefix", "sentence_iterator", "model_writer", "vocab_size", "model_type"]
    + [f"{name}_{kind}" for name in SPECIAL_PIECES for kind in ("id", "piece")]
)


def _import_sentencepiece():
    import sentencepiece

    return sentencepiece


def _import_tensorflow_text():
    # Lazy: char/byte users (and exported char/byte graphs) never need tensorflow_text.
    import tensorflow_text

    return tensorflow_text


class SentencePieceTokenizer(Tokenizer):
    """Subword tokenizer from a SentencePiece model, run in graph by tensorflow_text.

    Ids: `<pad>`=0, `<unk>`=1, `<bos>`=2, `<eos>`=3 (set so by `train`), then the pieces.
    `tokenize` equals the python `sentencepiece` processor's `encode`; `detokenize` drops
    pad/bos/eos and renders unknown pieces as the model's unk surface (U+FFFD for models made
    by `train`). Ids outside the vocabulary are detokenized as `unk_id`. For models made
    elsewhere with `add_dummy_prefix=True` (sentencepiece's default), tensorflow_text strips
    all leading spaces when detokenizing, where the python processor strips one.

    The model proto is held by a `tensorflow_text.SentencepieceTokenizer`, so it travels inside
    SavedModels; loading such a SavedModel needs `import tensorflow_text` first (its ops are
    not core TensorFlow ops, so TF Serving needs the tensorflow_text ops too).

    Shapes: B batch size, T pieces of one text.

    Args:
        model_file: path of a SentencePiece `.model` file whose pad id is 0 (true of any model
            made by `SentencePieceTokenizer.train`).

    Example:
    >>> tokenizer = SentencePieceTokenizer.train(texts, "/tmp/spm", vocab_size=200)
    >>> ids = tokenizer.tokenize(["to be or not to be"])  # int32 RaggedTensor [1, None]
    >>> tokenizer.detokenize(ids).numpy()
    array([b'to be or not to be'], dtype=object)
    >>> SentencePieceTokenizer("/tmp/spm/spm.model").vocabulary_size
    200
    """

    def __init__(self, model_file):
        super().__init__()
        model_file = os.fspath(model_file)
        if not os.path.isfile(model_file):
            raise FileNotFoundError(
                f"SentencePiece model file not found: {model_file!r}. Pass the path of a "
                "`.model` file, e.g. one written by SentencePieceTokenizer.train."
            )
        with open(model_file, "rb") as f:
            self._model_proto = f.read()
        self.model_file = model_file
        processor = _import_sentencepiece().SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(self._model_proto)
        except (RuntimeError, OSError) as e:
            raise ValueError(
                f"`model_file` is not a valid SentencePiece model: {model_file!r} ({e})."
            ) from e
        if processor.pad_id() != 0:
            raise ValueError(
                "keras_lm tokenizers use pad_id=0, but this SentencePiece model has "
                f"pad_id={processor.pad_id()}. Retrain it with SentencePieceTokenizer.train "
                f"(or with pad_id=0). Received: model_file={model_file!r}."
            )
        self._processor = processor
        self._vocabulary_size = processor.vocab_size()
        self._unk_id = processor.unk_id()
        self._bos_id = processor.bos_id() if processor.bos_id() >= 0 else None
        self._eos_id = processor.eos_id() if processor.eos_id() >= 0 else None
        self._build_sentencepiece()

    def _build_sentencepiece(self):
        tf_text = _import_tensorflow_text()
        self._sentencepiece = tf_text.SentencepieceTokenizer(
            model=self._model_proto, out_type=tf.int32
        )

    def _live_sentencepiece(self):
        """The tensorflow_text tokenizer, rebuilt if its resource was destroyed.

        Inside a graph (tf.data map, tf.function, SavedModel signature) a tokenizer is built
        in that graph, so the SentencePiece resource is created by the graph that uses it.
        A handle captured from eager mode is not found when tf.data rewrites the pipeline
        (e.g. `model.fit`'s rebatching): "Resource ..._SentencepieceOp... does not exist".

        tensorflow_text's SentencePiece resource is owned by its kernel, so
        `keras.backend.clear_session()` (which clears the kernel cache) destroys it, and every
        later call would fail with NotFoundError. We check (eagerly, also while tracing) and
        rebuild it from the model proto.
        """
        if not tf.executing_eagerly():
            tf_text = _import_tensorflow_text()
            return tf_text.SentencepieceTokenizer(model=self._model_proto, out_type=tf.int32)
        with tf.init_scope():
            try:
                self._sentencepiece.tokenize(tf.constant([""], tf.string))
            except tf.errors.NotFoundError:
                self._build_sentencepiece()
        return self._sentencepiece

    @classmethod
    def train(
        cls,
        files_or_texts,
        directory,
        vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        user_defined_symbols=(),
        **trainer_options,
    ):
        """Trains a SentencePiece model into `directory` and returns its tokenizer.

        Writes `directory/spm.model` and `directory/tokenizer.json`, so the directory loads
        with `keras_lm.tokenizers.load_tokenizer`. SentencePiece's logs are silenced.

        Texts are fed to SentencePiece in chunks of whole lines (newlines kept inside), so
        "\\n" is a learned character. By default the text is not normalized and spaces are
        kept, so `detokenize(tokenize(text)) == text` for text made of known characters.

        Args:
            files_or_texts: a path (str or `os.PathLike`) or list of paths of UTF-8 text files
                (read without newline translation, like str texts), or an iterable of python
                str texts. A list is read as paths when its first item is an `os.PathLike` or a
                str naming an existing file; a first item that names no file but looks like a
                path (one word with "/" or a suffix such as ".txt") is a FileNotFoundError.
            directory: folder to write the model into (created if missing).
            vocab_size: exact number of ids, the 4 specials and user symbols included. Too
                large for the text is a ValueError that says the largest possible value.
            model_type: "unigram" (default) or "bpe".
            character_coverage: fraction of characters covered by the vocabulary; rarer
                characters become `<unk>`. 1.0 (default) keeps all; ~0.9995 suits CJK.
            user_defined_symbols: strings always kept as single pieces (e.g. "<sep>").
            **trainer_options: further `sentencepiece.SentencePieceTrainer` options, e.g.
                `normalization_rule_name="nmt_nfkc"`, `input_sentence_size=1000000`,
                `shuffle_input_sentence=True`. The special ids are fixed and cannot be set.

        Returns:
            A `SentencePieceTokenizer` for `directory/spm.model`.
        """
        if model_type not in MODEL_TYPES:
            raise ValueError(
                f"`model_type` must be one of {list(MODEL_TYPES)}. "
                f"Received: model_type={model_type!r}."
            )
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 5:
            raise ValueError(
                "`vocab_size` must be an int > 4 (4 ids are the specials). "
                f"Received: vocab_size={vocab_size!r}."
            )
        if not 0.0 < character_coverage <= 1.0:
            raise ValueError(
                "`character_coverage` must be in (0, 1]. "
                f"Received: character_coverage={character_coverage!r}."
            )
        if isinstance(user_defined_symbols, str):
            user_defined_symbols = [user_defined_symbols]
        user_defined_symbols = list(user_defined_symbols)
        reserved = sorted(_RESERVED_OPTIONS.intersection(trainer_options))
        if reserved:
            raise ValueError(
                f"`train` sets these SentencePiece options itself; remove them: {reserved}."
            )
        options = dict(_DEFAULT_TRAINER_OPTIONS)
        options.update(trainer_options)
        options.setdefault("max_sentence_length", _MAX_SENTENCE_BYTES)
        options.setdefault("minloglevel", 2)  # errors only: no pages of INFO logs
        for name, (piece_id, piece) in SPECIAL_PIECES.items():
            options[f"{name}_id"] = piece_id
            options[f"{name}_piece"] = piece

        sentences = _training_sentences(files_or_texts)
        first = next(sentences, None)
        if first is None:
            raise ValueError(
                "`files_or_texts` holds no text to train SentencePiece on. "
                "Pass non-empty texts or files."
            )
        sentencepiece = _import_sentencepiece()
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=_chain(first, sentences),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                user_defined_symbols=user_defined_symbols,
                **options,
            )
        except RuntimeError as e:
            raise _training_error(e, vocab_size) from e

        # The model goes to a temporary file first and `save` puts it and tokenizer.json into
        # `directory` together, so a kill meanwhile never leaves a model without its json.
        directory = os.fspath(directory)
        handle, staged = tempfile.mkstemp(prefix="keras_lm_spm_", suffix=".model")
        try:
            with os.fdopen(handle, "wb") as f:
                f.write(model.getvalue())
            tokenizer = cls(staged)
            tokenizer.save(directory)
        finally:
            os.remove(staged)
        tokenizer.model_file = os.path.join(directory, MODEL_FILE)
        return tokenizer

    # ---- in graph -----------------------------------------------------------------------

    def _tokenize_batch(self, texts):
        return self._live_sentencepiece().tokenize(texts)

    def _detokenize_batch(self, ids):
        # tensorflow_text fails on ids outside the vocabulary: map them to unk first.
        flat = ids.flat_values
        in_range = (flat >= 0) & (flat < self.vocabulary_size)
        return self._live_sentencepiece().detokenize(
            ids.with_flat_values(tf.where(in_range, flat, self.unk_id))
        )

    # ---- python side --------------------------------------------------------------------

    @property
    def vocabulary_size(self):
        return self._vocabulary_size

    @property
    def unk_id(self):
        return self._unk_id

    @property
    def bos_id(self):
        return self._bos_id

    @property
    def eos_id(self):
        return self._eos_id

    @property
    def model_proto(self):
        """The serialized SentencePiece model (bytes)."""
        return self._model_proto

    @property
    def processor(self):
        """The python `sentencepiece.SentencePieceProcessor` of the same model."""
        return self._processor

    def id_to_token(self, token_id):
        token_id = int(token_id)
        if not 0 <= token_id < self.vocabulary_size:
            raise ValueError(
                f"`token_id` must be in [0, {self.vocabulary_size}). Received: token_id={token_id}."
            )
        return self._processor.id_to_piece(token_id)

    def token_to_id(self, token):
        """The id of a piece (e.g. "▁the"); an unknown piece gives `unk_id`."""
        if not isinstance(token, str):
            raise ValueError(f"`token` must be a str. Received: token={token!r}.")
        return self._processor.piece_to_id(token)

    def get_config(self):
        return {"model_file": self.model_file}

    def _save_assets(self, directory):
        # The model held in memory, not `self.model_file` again: that file may since have been
        # deleted or overwritten (e.g. by training another model into the same directory).
        with open(os.path.join(directory, MODEL_FILE), "wb") as f:
            f.write(self._model_proto)
        return {"model_file": MODEL_FILE}

    @classmethod
    def _from_saved(cls, directory, config):
        return cls(os.path.join(directory, config["model_file"]))


def _training_sentences(files_or_texts):
    """Yields training chunks of whole lines from files or texts (see `train`)."""
    if isinstance(files_or_texts, (str, os.PathLike)):
        paths = [files_or_texts]  # one argument is always a path, never a one-line corpus
    else:
        items = iter(files_or_texts)
        first = next(items, None)
        if first is None:
            return
        items = _chain(first, items)
        if isinstance(first, os.PathLike) or (
            isinstance(first, str)
            and len(first) < 4096
            and "\n" not in first
            and os.path.isfile(first)
        ):
            paths = list(items)
        elif _looks_like_a_path(first):
            # A mistyped path would otherwise be trained on as a one-word text.
            raise FileNotFoundError(
                f"SentencePiece training file not found: {first!r}. `files_or_texts` is read as "
                "texts unless its first item names an existing file; fix the path, or pass "
                "texts that hold more than one word."
            )
        else:
            for text in items:
                if not isinstance(text, str):
                    raise TypeError(
                        "`files_or_texts` must hold python str texts or file paths. "
                        f"Received an item of type {type(text).__name__}."
                    )
                yield from _chunk_lines(io.StringIO(text, newline=""))
            return
    paths = [os.fspath(path) for path in paths]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"SentencePiece training file not found: {path!r}.")
    for path in paths:
        # newline="": no newline translation, so "\r\n" text trains "\r" like a str text would
        # (and as `keras_lm.data.sources` reads files); lines split as for str texts above.
        with open(path, encoding="utf-8", newline="") as f:
            try:
                yield from _chunk_lines(f)
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"SentencePiece training file {path!r} is not valid UTF-8 ({error}). "
                    "Re-encode it as UTF-8."
                ) from error


_PATH_SUFFIXES = (".txt", ".text", ".md", ".csv", ".tsv", ".json", ".jsonl", ".gz")


def _looks_like_a_path(item):
    """Whether a str that names no file still looks like a path (one word with "/" or ".txt")."""
    return (
        isinstance(item, str)
        and 0 < len(item) < 4096
        and not any(c.isspace() for c in item)
        and ("/" in item or os.sep in item or item.lower().endswith(_PATH_SUFFIXES))
    )


def _chunk_lines(lines):
    """Groups lines (newlines kept) into chunks of at most `_CHUNK_BYTES` UTF-8 bytes."""
    chunk, size = [], 0
    for line in lines:
        n = len(line.encode("utf-8"))
        if chunk and size + n > _CHUNK_BYTES:
            yield "".join(chunk)
            chunk, size = [], 0
        if n > _CHUNK_BYTES:  # one very long line: cut it (by characters, so roughly)
            step = _CHUNK_BYTES // 4
            for start in range(0, len(line), step):
                yield line[start : start + step]
            continue
        chunk.append(line)
        size += n
    if chunk:
        yield "".join(chunk)


def _chain(first, rest):
    yield first
    yield from rest


def _training_error(error, vocab_size):
    """SentencePiece's RuntimeError -> a ValueError naming the argument and the fix."""
    message = str(error)
    too_high = re.search(r"Vocabulary size too high.*<= (\d+)", message)
    if too_high:
        return ValueError(
            f"`vocab_size` is too large for this text: SentencePiece can make at most "
            f"{too_high.group(1)} pieces from it. Lower vocab_size or train on more text. "
            f"Received: vocab_size={vocab_size}."
        )
    if "smaller than required_chars" in message:
        required = re.search(r"required_chars\. \d+ vs (\d+)", message)
        needed = f" (at least {required.group(1)} here)" if required else ""
        return ValueError(
            "`vocab_size` is smaller than the number of characters to cover plus specials "
            f"and user symbols{needed}. Raise vocab_size or lower character_coverage. "
            f"Received: vocab_size={vocab_size}. SentencePiece said: {message}"
        )
    return ValueError(f"SentencePiece training failed: {message}")
