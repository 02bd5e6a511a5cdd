"""The experiment directory: resolved config, tokenizer, checkpoints.

    WORKDIR/
      config.json        the resolved config of `keras-lm train` (reused by evaluate/generate)
      tokenizer/         the tokenizer (`keras_lm.tokenizers.load_tokenizer`)
      checkpoints/       ckpt-<step> (last N), best/ckpt-<step> (lowest validation loss)
      metrics.jsonl      one line per evaluation: step, elapsed seconds, train/val metrics
      tensorboard/       training curves
"""

import json
import os

import ml_collections
import tensorflow as tf

from keras_lm.training.checkpointing import model_checkpoint

CONFIG_FILE = "config.json"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoints"
# Sections that define what a workdir's checkpoints contain: changing them and resuming would
# load weights into a different model or feed it differently tokenized text.
_IDENTITY_SECTIONS = ("task", "model", "tokenizer")


def write_config(workdir, config):
    """Writes the resolved config, refusing to mix two different experiments in one workdir."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, CONFIG_FILE)
    new = json.loads(config.to_json_best_effort(sort_keys=True))
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        changed = [s for s in _IDENTITY_SECTIONS if old.get(s) != new.get(s)]
        if changed:
            raise ValueError(
                f"{workdir!r} holds an experiment with a different {', '.join(changed)} "
                f"config; resuming would load its checkpoints into another model. Use a new "
                f"--workdir, or delete {workdir!r} to start over. Saved: "
                + "; ".join(f"{s}={old.get(s)}" for s in changed)
            )
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(new, f, indent=2, sort_keys=True)
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
            f"--workdir={workdir}`), or wait for the first checkpoint (every "
            "config.train.eval_every steps)."
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
