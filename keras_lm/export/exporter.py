"""Writes a model and its tokenizer as a versioned SavedModel for TF Serving.

    EXPORT_DIR/
      1/                       one version (TF Serving serves the highest number)
        saved_model.pb         graphs and signatures (strings in, strings / scores out)
        variables/             the weights
        assets/tokenizer/      the tokenizer files (`keras_lm.tokenizers.load_tokenizer`)
        keras_lm_export.json   kind, configs, step, vocabulary size, signatures, requirements
      2/ ...

A version is written into a hidden temporary directory beside it and renamed into place,
so a crash never leaves a half-written version (TF Serving ignores names that are not
numbers; a crash may leave a `.tmp-*` directory, safe to delete).
"""

import contextlib
import datetime
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
import time

import tensorflow as tf
from absl import logging as absl_logging

from keras_lm.export.kinds import builder_class
from keras_lm.export.kinds import kind_of
from keras_lm.export.saved_model_ops import non_core_ops
from keras_lm.export.saved_model_ops import op_packages
from keras_lm.export.saved_model_ops import read_saved_model

METADATA_FILE = "keras_lm_export.json"
TOKENIZER_ASSETS = os.path.join("assets", "tokenizer")
FORMAT_VERSION = 1
# pip names of packages whose ops an export may need, for error messages.
PIP_NAMES = {"tensorflow_text": "tensorflow-text"}


def next_version(export_dir):
    """The next free version number in `export_dir`: 1 + the largest, or 1 if none."""
    versions = [int(name) for name in _listdir(export_dir) if re.fullmatch(r"\d+", name)]
    return max(versions, default=0) + 1


def export_model(model, tokenizer, export_dir, version=None, overwrite=False, kind=None,
                 config=None, step=None, **options):
    """Exports `model` with `tokenizer` as `export_dir/<version>/`, a SavedModel.

    Args:
        model: a built keras_lm model with registered export kind (see `kinds.py`): a
            Keras model, or e.g. a fitted `NGramLM` (kind "ngram_lm").
        tokenizer: the keras_lm tokenizer of the model.
        export_dir: the model's base directory (TF Serving's `--model_base_path`).
        version: positive int, or None for the next free number.
        overwrite: replace an existing version directory instead of failing.
        kind: export kind (default: from the model's class, `kind_of(model)`).
        config: the experiment config (dict or ConfigDict) to record, or None.
        step: the training step of the weights, or None.
        **options: the kind's options, e.g. `CausalLMModule`'s `max_new_tokens`,
            `temperature`, `top_k`, `top_p`, `seed` (the defaults of `generate`);
            `ClassifierModule`'s `labels`; see each builder's class docstring.

    Returns:
        The path of the version directory.

    Raises:
        FileExistsError: the version exists and `overwrite` is False.
        ValueError: an unknown kind, a model without one, a bad `version`.

    Example:
    >>> export_model(model, tokenizer, "/tmp/models/shakespeare", max_new_tokens=100)
    '/tmp/models/shakespeare/1'
    """
    start = time.perf_counter()
    export_dir = os.fspath(export_dir)
    if version is None:
        version = next_version(export_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            "`version` must be a positive int (TF Serving's numbered versions), or None for "
            f"the next free number. Received: version={version!r}"
        )
    target = os.path.join(export_dir, str(version))
    _check_free(target, overwrite)
    kind = kind or kind_of(model)
    builder = builder_class(kind)

    os.makedirs(export_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; servers must read
        module = builder(model, tokenizer, **options)
        signatures = module.signatures()
        with _quiet_tensorflow_logs():
            tf.saved_model.save(module, staging, signatures=signatures)
        tokenizer.save(os.path.join(staging, TOKENIZER_ASSETS))
        if hasattr(module, "save_assets"):  # e.g. a seq2seq model's target tokenizer
            module.save_assets(staging)
        custom_ops = non_core_ops(staging)
        metadata = _metadata(staging, module, kind, model, tokenizer, config, step, custom_ops)
        metadata["export_seconds"] = round(time.perf_counter() - start, 3)
        _write_metadata(staging, metadata)
        _install(staging, target, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _metadata(path, module, kind, model, tokenizer, config, step, custom_ops):
    packages = op_packages(custom_ops)
    unknown = sorted(set(custom_ops) - set(packages))
    if unknown:
        raise ValueError(
            f"The exported graph uses ops {unknown} that are not core TensorFlow and whose "
            "library is not loaded from a python package here; a server could not load it. "
            "Build the tokenizer and model from core TensorFlow ops or tensorflow_text."
        )
    if hasattr(config, "to_json_best_effort"):
        config = json.loads(config.to_json_best_effort())
    metadata = {
        "format": "keras_lm_export",
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_class": type(model).__name__,
        # A model that is not a Keras layer (the n-gram) has no get_config: its builder's
        # metadata() gives the model_config instead.
        "model_config": (json.loads(json.dumps(model.get_config(), default=str))
                         if hasattr(model, "get_config") else None),
        "config": config,
        "step": None if step is None else int(step),
        "vocabulary_size": int(tokenizer.vocabulary_size),
        "tokenizer": {"class": type(tokenizer).__name__, "directory": TOKENIZER_ASSETS},
        "serving_default": module.main_signature,
        "signatures": signature_specs(path),
        "requires": sorted(set(packages.values())),
        "custom_ops": list(custom_ops),
        "tensorflow_version": tf.__version__,
        "keras_lm_version": _keras_lm_version(),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    metadata.update(module.metadata())
    return metadata


def signature_specs(path):
    """{signature: {"inputs": {name: {dtype, shape}}, "outputs": {...}}} of a SavedModel."""
    specs = {}
    meta_graph = read_saved_model(path).meta_graphs[0]
    for name, signature in sorted(meta_graph.signature_def.items()):
        if name.startswith("__"):  # __saved_model_init_op: not a serving signature
            continue
        specs[name] = {
            "inputs": {k: _tensor_spec(v) for k, v in sorted(signature.inputs.items())},
            "outputs": {k: _tensor_spec(v) for k, v in sorted(signature.outputs.items())},
        }
    return specs


def _tensor_spec(info):
    shape = None if info.tensor_shape.unknown_rank else [
        d.size if d.size >= 0 else None for d in info.tensor_shape.dim
    ]
    return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": shape}


def _write_metadata(path, metadata):
    with open(os.path.join(path, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)


def _check_free(target, overwrite):
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(
            f"Export version directory {target!r} already exists. Pick another --version, "
            "leave it out for the next free number, or pass --overwrite (overwrite=True) to "
            "replace it."
        )


def _install(staging, target, overwrite):
    """Renames the finished `staging` directory to `target` (replacing it if allowed)."""
    _check_free(target, overwrite)
    if not os.path.exists(target):
        os.rename(staging, target)
        return
    parent, name = os.path.split(target)
    retired = tempfile.mkdtemp(prefix=f".old-{name}-", dir=parent)
    os.rename(target, os.path.join(retired, name))
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(os.path.join(retired, name), target)  # put the old version back
        raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def _quiet_tensorflow_logs():
    """Hides TensorFlow's INFO logs (absl's, one line per captured variable) for a block."""
    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        yield
    finally:
        absl_logging.set_verbosity(previous)


def _listdir(path):
    return os.listdir(path) if os.path.isdir(path) else []


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _keras_lm_version():
    try:
        return importlib.metadata.version("keras-lm")
    except importlib.metadata.PackageNotFoundError:
        return None
