"""The experiment directory: resolved config, tokenizer, checkpoints.

    WORKDIR/
      config.json        the resolved config of `keras-lm train` (reused by evaluate/generate)
      config_history.jsonl  earlier config.json contents, one line each time a resume changed it
      tokenizer/         the tokenizer (`keras_lm.tokenizers.load_tokenizer`), with
                         fitted_on.json: the config fields it was built from
      checkpoints/       ckpt-<step> (last N), best/ckpt-<step> (lowest validation loss)
      ngram/             the counts of an n-gram model (instead of checkpoints)
      metrics.jsonl      one line per evaluation: step, elapsed seconds, train/val metrics
      tensorboard/       training curves
"""

import datetime
import json
import os
import shutil

import ml_collections
import tensorflow as tf
from absl import logging

from keras_lm.tokenizers.tokenizer import TOKENIZER_JSON
from keras_lm.training.checkpointing import model_checkpoint

CONFIG_FILE = "config.json"
CONFIG_HISTORY_FILE = "config_history.jsonl"
TOKENIZER_DIR = "tokenizer"
# Inside a workdir's tokenizer folder: the config fields the tokenizer was built from.
TOKENIZER_INPUTS_FILE = "fitted_on.json"
CHECKPOINT_DIR = "checkpoints"
NGRAM_DIR = "ngram"  # an n-gram model's counts: its trained state (it has no checkpoints)
# Sections that define what a workdir's checkpoints contain: changing them and resuming would
# load weights into a different model or feed it differently tokenized text.
_IDENTITY_SECTIONS = ("task", "model", "tokenizer", "target_tokenizer")
# Fields a resume must keep besides those: they fix the data stream (its order, windows and
# batches), so changing them would continue another stream and compare validation losses of
# different windows. Every `data` field counts; the rest of `train` may change.
_RESUME_TRAIN_FIELDS = ("batch_size", "seed")
# The HMM's `em` section (Baum-Welch): the values of its optional fields when a config leaves
# them out, and those that every EM iteration depends on (a resume must keep them).
EM_DEFAULTS = {"chunk_length": 512, "batch_size": 64, "pseudo_count": 0.0}
_RESUME_EM_FIELDS = ("chunk_length", "pseudo_count")
# The `data` fields that choose the text a tokenizer is fitted on.
_TOKENIZER_DATA_FIELDS = ("source", "source_options", "text_column", "text_pair_column",
                          "word_column")


def _as_json(config):
    """A config (ConfigDict or mapping) as plain JSON values, the form config.json holds."""
    if hasattr(config, "to_json_best_effort"):
        return json.loads(config.to_json_best_effort(sort_keys=True))
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def has_trained_state(workdir):
    """Whether `workdir` holds what training produced: a checkpoint, or n-gram counts.

    Gradient-trained and EM-trained (HMM) models save checkpoints under `checkpoints/` (only
    complete ones count: `tf.train.latest_checkpoint` names a checkpoint once all its files
    are written); the n-gram model saves its counts under `ngram/`. A config.json or
    tokenizer left by a run that failed before its first checkpoint is not trained state.
    """
    workdir = os.fspath(workdir)
    checkpoints = os.path.join(workdir, CHECKPOINT_DIR)
    for directory in (checkpoints, os.path.join(checkpoints, "best")):
        if os.path.isdir(directory) and tf.train.latest_checkpoint(directory):
            return True
    counts = os.path.join(workdir, NGRAM_DIR)
    return os.path.isdir(counts) and bool(os.listdir(counts))


def write_config(workdir, config):
    """Writes the resolved config, refusing to mix two different experiments in one workdir.

    Only a workdir with trained state (`has_trained_state`) is guarded: there, the `task`,
    `model` and tokenizer sections, every `data` field, `train.batch_size`, `train.seed`,
    `em.chunk_length`, `em.pseudo_count` and the choice between EM and gradient training
    (`em.iterations` > 0 or 0) must stay as saved (ValueError naming each changed field
    otherwise), and the previous config.json is appended to config_history.jsonl before a
    changed one replaces it. A workdir without trained state (e.g. a first run that failed on
    a bad model config) takes the new config as it is.
    """
    workdir = os.fspath(workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise FileExistsError(
            f"--workdir={workdir} is a file, but the workdir must be a directory (the "
            "experiment's config, tokenizer and checkpoints go into it). Name a new or "
            "existing directory."
        )
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG_FILE)
    new = _as_json(config)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old != new and has_trained_state(workdir):
            _check_resumable(workdir, old, new)
            _append_history(workdir, old)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(new, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _check_resumable(workdir, old, new):
    """ValueError unless the config `new` may resume the trained workdir of config `old`."""
    changed = [s for s in _IDENTITY_SECTIONS if old.get(s) != new.get(s)]
    if changed:
        raise ValueError(
            f"{workdir!r} holds an experiment with a different {', '.join(changed)} "
            f"config; resuming would load its checkpoints into another model. Use a new "
            f"--workdir, or delete {workdir!r} to start over. Saved: "
            + "; ".join(f"{s}={old.get(s)}" for s in changed)
        )
    from keras_lm.training.config import default_train_config

    unset = "<unset>"
    differ = []
    old_data, new_data = old.get("data") or {}, new.get("data") or {}
    for name in sorted(set(old_data) | set(new_data)):
        before, after = old_data.get(name, unset), new_data.get(name, unset)
        if before != after:
            differ.append((f"data.{name}", before, after))
    defaults = default_train_config()
    old_train, new_train = old.get("train") or {}, new.get("train") or {}
    for name in _RESUME_TRAIN_FIELDS:
        default = defaults.get(name, unset)
        before, after = old_train.get(name, default), new_train.get(name, default)
        if before != after:
            differ.append((f"train.{name}", before, after))
    # EM (the HMM): the chunks and the prior shape every iteration; more iterations may follow,
    # but not a switch between EM (iterations > 0) and gradient training (iterations == 0).
    old_em, new_em = old.get("em") or {}, new.get("em") or {}
    for name in _RESUME_EM_FIELDS:
        default = EM_DEFAULTS[name]
        before, after = old_em.get(name, default), new_em.get(name, default)
        if before != after:
            differ.append((f"em.{name}", before, after))
    before, after = old_em.get("iterations", 0), new_em.get("iterations", 0)
    if (before > 0) != (after > 0):
        differ.append(("em.iterations (EM when > 0, model.fit when 0)", before, after))
    if differ:
        raise ValueError(
            f"{workdir!r} holds checkpoints trained with other data or training settings; a "
            "resume must keep the data stream (its order, windows and batches) and the way "
            "the model is trained, or it would continue another run and compare validation "
            "losses of different windows. Changed: "
            + "; ".join(f"{name} saved {before!r}, now {after!r}"
                        for name, before, after in differ)
            + f". Use a new --workdir for the new settings, or set these fields back to the "
            f"saved values (in {os.path.join(workdir, CONFIG_FILE)})."
        )


def _append_history(workdir, old):
    """Keeps the config.json a resume is about to replace: one line of config_history.jsonl."""
    entry = {"replaced_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")}
    latest = tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))
    if latest:
        entry["latest_checkpoint"] = os.path.basename(latest)
    entry["config"] = old
    with open(os.path.join(workdir, CONFIG_HISTORY_FILE), "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def tokenizer_inputs(config):
    """The config fields a workdir tokenizer is built from (stored as fitted_on.json).

    Its own and the target tokenizer's sections (a shared seq2seq tokenizer is fitted on
    both sides), `init_from` (fine-tuning copies that workdir's tokenizer) and the `data`
    fields that choose the fitting text.
    """
    config = _as_json(config)
    data = config.get("data") or {}
    return {
        "tokenizer": config.get("tokenizer"),
        "target_tokenizer": config.get("target_tokenizer"),
        "init_from": config.get("init_from") or "",
        "data": {name: data[name] for name in _TOKENIZER_DATA_FIELDS if name in data},
    }


def reusable_tokenizer(workdir, config, name=TOKENIZER_DIR):
    """Whether `workdir/name` holds a tokenizer that a run of `config` should load.

    False means: build one (then call `record_tokenizer_inputs`). A folder without
    tokenizer.json (a run killed while writing it) or one built from other inputs than
    `config`'s (see `tokenizer_inputs`) is deleted then, when the workdir has no trained
    state. A folder without fitted_on.json (written by an older version) is reused.

    Raises:
        ValueError: the workdir has checkpoints but its tokenizer is incomplete.
    """
    directory = os.path.join(os.fspath(workdir), name)
    if not os.path.isdir(directory):
        return False
    complete = os.path.isfile(os.path.join(directory, TOKENIZER_JSON))
    if has_trained_state(workdir):
        if not complete:
            raise ValueError(
                f"The tokenizer of {workdir!r} is incomplete ({TOKENIZER_JSON} is missing in "
                f"{directory!r}), but the workdir holds trained checkpoints that need that "
                "exact tokenizer. Restore the folder from a copy, or train in a new --workdir."
            )
        return True
    if complete:
        inputs_path = os.path.join(directory, TOKENIZER_INPUTS_FILE)
        if not os.path.isfile(inputs_path):
            return True
        with open(inputs_path, encoding="utf-8") as f:
            saved = json.load(f)
        if saved == _as_json(tokenizer_inputs(config)):
            return True
        reason = "it was built from other tokenizer or data settings"
    else:
        reason = f"it has no {TOKENIZER_JSON} (an earlier run stopped while saving it)"
    logging.info("Rebuilding the tokenizer in %s: %s, and the workdir holds no checkpoint.",
                 directory, reason)
    shutil.rmtree(directory)
    return False


def record_tokenizer_inputs(workdir, config, name=TOKENIZER_DIR):
    """Writes fitted_on.json into `workdir/name`: what `reusable_tokenizer` compares."""
    path = os.path.join(os.fspath(workdir), name, TOKENIZER_INPUTS_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(tokenizer_inputs(config), f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_config(workdir):
    """The config a `keras-lm train` run wrote into `workdir`."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No {CONFIG_FILE} in {workdir!r}: this is not a keras_lm workdir (run "
            f"`keras-lm train --config=... --workdir={workdir}` first)."
        )
    with open(path, encoding="utf-8") as f:
        return ml_collections.ConfigDict(json.load(f))


def checkpoint_path(workdir, which="latest"):
    """Path prefix of the latest (or best) checkpoint; FileNotFoundError if there is none."""
    if which not in ("latest", "best"):
        raise ValueError(f"`which` must be 'latest' or 'best'. Received: {which!r}")
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    if which == "best":
        directory = os.path.join(directory, "best")
    path = tf.train.latest_checkpoint(directory)
    if path is None:
        raise FileNotFoundError(
            f"No {which} checkpoint in {directory!r}. Train first (`keras-lm train "
            f"--config=configs/NAME.py --workdir={workdir}`, with the config file of this "
            "experiment), or wait for the first checkpoint (every config.train.eval_every "
            "steps)."
        )
    return path


def restore_weights(model, workdir, which="latest"):
    """Loads a training checkpoint's model weights (not the optimizer) into `model`.

    Returns:
        The checkpoint's training step.
    """
    path = checkpoint_path(workdir, which)
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = model_checkpoint(model, step=step)
    checkpoint.read(path).expect_partial().assert_existing_objects_matched()
    return int(step.numpy())
