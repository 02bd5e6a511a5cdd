"""Builds tokenizers from a config, and loads saved ones."""

import json
import os

from keras_lm.tokenizers.byte_tokenizer import ByteTokenizer
from keras_lm.tokenizers.char_tokenizer import CharTokenizer
from keras_lm.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_lm.tokenizers.tokenizer import TOKENIZER_JSON

TOKENIZER_CLASSES = {
    cls.__name__: cls for cls in (CharTokenizer, ByteTokenizer, SentencePieceTokenizer)
}
# Config fields each `type` accepts (besides `type`), with their defaults.
_FIELDS = {
    "char": {"min_count": 1},
    "byte": {},
    "sentencepiece": {
        "vocab_size": None,
        "model_type": "unigram",
        "character_coverage": 1.0,
        "user_defined_symbols": (),
        "model_file": None,
    },
}


def load_tokenizer(directory):
    """Loads a tokenizer written by `Tokenizer.save(directory)`, whatever its class.

    Args:
        directory: folder holding `tokenizer.json` and the tokenizer's vocabulary/model file.

    Returns:
        A `CharTokenizer`, `ByteTokenizer` or `SentencePieceTokenizer` equal to the saved one.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Tokenizer directory not found: {directory!r}.")
    path = os.path.join(directory, TOKENIZER_JSON)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No {TOKENIZER_JSON} in the tokenizer directory: {path!r} is missing. "
            "Write one with `tokenizer.save(directory)`."
        )
    with open(path, encoding="utf-8") as f:
        try:
            saved = json.load(f)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(
                f"{path!r} is not a valid {TOKENIZER_JSON} ({e}); write it again with "
                "`tokenizer.save(directory)`."
            ) from e
    class_name = saved.get("class") if isinstance(saved, dict) else None
    if class_name not in TOKENIZER_CLASSES:
        raise ValueError(
            f"{path!r} names an unknown tokenizer class {class_name!r}; "
            f"expected one of {sorted(TOKENIZER_CLASSES)}."
        )
    return TOKENIZER_CLASSES[class_name]._from_saved(directory, saved.get("config", {}))


def from_config(tokenizer_config, texts=None, directory=None):
    """Builds the tokenizer a config describes, fitting or training it where needed.

    Config fields by `type` (defaults in brackets):
    - "char": `min_count` [1]. Fitted on `texts`.
    - "byte": nothing else. Needs no texts.
    - "sentencepiece": `vocab_size` (required unless `model_file`), `model_type`
      ["unigram"], `character_coverage` [1.0], `user_defined_symbols` [()], `model_file`
      [None]. With `model_file`, that model is loaded; otherwise a model is trained on
      `texts` into `directory`.

    Args:
        tokenizer_config: `ml_collections.ConfigDict` or dict with a `type` field.
        texts: iterable of python str, the corpus to fit / train on ("char",
            "sentencepiece"); for "sentencepiece" file paths work too.
        directory: where to write the tokenizer. Required to train SentencePiece; when given,
            the built tokenizer is saved there for every type, so
            `load_tokenizer(directory)` gets it back.

    Returns:
        A `Tokenizer`.

    Example:
    >>> config = ml_collections.ConfigDict({"type": "sentencepiece", "vocab_size": 300})
    >>> tokenizer = from_config(config, texts=corpus, directory=workdir + "/tokenizer")
    """
    config = _as_dict(tokenizer_config)
    kind = config.pop("type", None)
    if kind not in _FIELDS:
        raise ValueError(
            f"`tokenizer_config.type` must be one of {sorted(_FIELDS)}. Received: type={kind!r}."
        )
    unknown = sorted(set(config) - set(_FIELDS[kind]))
    if unknown:
        raise ValueError(
            f"Unknown field(s) {unknown} in `tokenizer_config` for type={kind!r}; "
            f"valid fields: {sorted(_FIELDS[kind])}."
        )
    options = dict(_FIELDS[kind])
    options.update(config)

    if kind == "byte":
        tokenizer = ByteTokenizer()
    elif kind == "char":
        if texts is None:
            raise ValueError("A 'char' tokenizer is fitted on `texts`; pass texts. Received: None.")
        tokenizer = CharTokenizer.fit(texts, min_count=options["min_count"])
    elif options["model_file"]:
        tokenizer = SentencePieceTokenizer(options["model_file"])
    else:
        needed = (("texts", texts), ("directory", directory))
        missing = [name for name, value in needed if value is None]
        if missing:
            raise ValueError(
                f"Training a 'sentencepiece' tokenizer needs {' and '.join(missing)} (or set "
                "`tokenizer_config.model_file` to load a model). Received: "
                + ", ".join(f"{name}=None" for name in missing)
                + "."
            )
        if options["vocab_size"] is None:
            raise ValueError(
                "`tokenizer_config.vocab_size` is required for type='sentencepiece'. "
                "Received: vocab_size=None."
            )
        return SentencePieceTokenizer.train(
            texts,
            directory,
            vocab_size=options["vocab_size"],
            model_type=options["model_type"],
            character_coverage=options["character_coverage"],
            user_defined_symbols=tuple(options["user_defined_symbols"]),
        )
    if directory is not None:
        tokenizer.save(directory)
    return tokenizer


def _as_dict(tokenizer_config):
    """ConfigDict / FrozenConfigDict / Mapping -> a fresh plain dict."""
    if hasattr(tokenizer_config, "to_dict"):
        return dict(tokenizer_config.to_dict())
    try:
        return dict(tokenizer_config)
    except (TypeError, ValueError) as e:
        raise TypeError(
            "`tokenizer_config` must be an ml_collections.ConfigDict or a dict. "
            f"Received: {tokenizer_config!r}."
        ) from e
