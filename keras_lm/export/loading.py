"""Loads a keras_lm export in python, importing the op libraries it needs first."""

import importlib
import json
import os

import tensorflow as tf

from keras_lm.export.exporter import METADATA_FILE
from keras_lm.export.exporter import PIP_NAMES


def read_metadata(path):
    """The `keras_lm_export.json` of an export version directory, as a dict."""
    file = os.path.join(os.fspath(path), METADATA_FILE)
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"No {METADATA_FILE} in {os.fspath(path)!r}: not a keras_lm export version "
            "directory. Pass EXPORT_DIR/<version> as written by `keras-lm export`."
        )
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def load(path):
    """`tf.saved_model.load` of a keras_lm export, with its custom-op packages imported.

    A SentencePiece export runs tensorflow_text ops, which TensorFlow only knows once
    `tensorflow_text` is imported; `keras_lm_export.json` lists such packages under
    "requires". Without keras_lm, do the same by hand:
    `import tensorflow_text; tf.saved_model.load(path)`.

    Args:
        path: an export version directory (EXPORT_DIR/<version>).

    Returns:
        The loaded object: `obj.signatures["generate"](prompts=tf.constant([...]))`, or the
        python functions `obj.generate(...)`, `obj.score(...)`.

    Raises:
        ImportError: a required package is not installed (the message says which to
            install).
    """
    path = os.fspath(path)
    requires = read_metadata(path).get("requires", [])
    for package in requires:
        try:
            importlib.import_module(package)
        except ImportError as error:
            raise ImportError(_missing_message(path, package)) from error
    try:
        return tf.saved_model.load(path)
    except tf.errors.NotFoundError as error:
        if "Op type not registered" not in str(error):
            raise
        first_line = error.message.splitlines()[0]
        raise ImportError(
            f"{path!r} uses ops that this TensorFlow does not have ({first_line}). "
            f"Its {METADATA_FILE} requires {requires}; import them before loading."
        ) from error


def _missing_message(path, package):
    pip_name = PIP_NAMES.get(package, package)
    major_minor = ".".join(tf.__version__.split(".")[:2])
    return (
        f"{path!r} needs the TensorFlow ops of `{package}` (its tokenizer runs them in the "
        f"graph), which is not installed. Install it for this TensorFlow: "
        f"pip install \"{pip_name}=={major_minor}.*\", then load again (or `import {package}` "
        "before tf.saved_model.load)."
    )
