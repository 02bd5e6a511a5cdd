"""Tiny models, workdirs and independent references shared by the export tests."""

import os
import subprocess
import sys
import sysconfig

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.models import DecoderLM
from keras_lm.models import RecurrentLM
from keras_lm.tasks import language_model
from keras_lm.tasks import workdir as workdir_lib
from keras_lm.testing.configs import TINY_TEXT
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus
from keras_lm.tokenizers import CharTokenizer
from keras_lm.training.checkpointing import model_checkpoint

CONTEXT = 16


@pytest.fixture(scope="session")
def char_tokenizer():
    return CharTokenizer.fit([TINY_TEXT])


def tiny_model(family, vocabulary_size, context=CONTEXT, seed=0):
    """A small untrained LM: "decoder", "rotary" (DecoderLM) or a recurrent cell name."""
    keras.utils.set_random_seed(seed)
    if family in ("decoder", "rotary"):
        model = DecoderLM(vocabulary_size=vocabulary_size, num_layers=1, num_heads=2,
                          hidden_dim=16, sequence_length=context,
                          position_encoding="rotary" if family == "rotary" else "learned")
    else:
        model = RecurrentLM(vocabulary_size=vocabulary_size, cell=family, num_layers=1,
                            hidden_dim=16, sequence_length=context)
    model.build()
    return model


def untrained_workdir(directory, step=3, **model_fields):
    """A workdir as `keras-lm train` leaves it, with untrained weights saved at `step`."""
    source = write_tiny_corpus(os.path.join(directory, "corpus"))
    config = shrink(language_model.default_config(), source)
    config.model.update(model_fields)
    config.sample.update(temperature=0.0, max_new_tokens=6)
    workdir = os.path.join(directory, "workdir")
    workdir_lib.write_config(workdir, config)
    tokenizer = language_model.build_tokenizer(config, workdir)
    model = language_model.build_model(config.model, tokenizer.vocabulary_size)
    checkpoint = model_checkpoint(model, step=tf.Variable(step, dtype=tf.int64))
    checkpoint.save(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR, "ckpt"))
    return workdir


def reference_scores(model, tokenizer, texts):
    """Total log-likelihood and label count per text, in float64 numpy, window by window.

    The evaluation's convention, written out independently: the stream is
    [eos] + text + [eos], cut into non-overlapping windows of the model's context.
    """
    context = model.sequence_length
    results = []
    for text in texts:
        stream = [tokenizer.eos_id] + np.asarray(tokenizer.tokenize(text)).tolist()
        stream.append(tokenizer.eos_id)
        total, count = 0.0, 0
        for start in range(0, len(stream) - 1, context):
            window = stream[start:start + context + 1]
            logits = np.asarray(model(np.array([window[:-1]], np.int32)))[0].astype(np.float64)
            shifted = logits - logits.max(-1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
            total += sum(log_probs[i, window[i + 1]] for i in range(len(window) - 1))
            count += len(window) - 1
        results.append((total, count))
    return results


def isolated_python(script, *args, cwd, log_level=2):
    """Runs `script` in a python that sees the venv's packages but not keras_lm.

    `-I -S`: no current directory or script directory on sys.path, no PYTHON* variables,
    no site processing, so the editable install's .pth finder never runs; the venv's
    site-packages are appended by hand (plain directories, no .pth files).

    Returns:
        The running `subprocess.Popen` (text stdout and stderr piped).
    """
    paths = sysconfig.get_paths()
    site_dirs = sorted({paths["purelib"], paths["platlib"]})
    prelude = f"import sys\nsys.path.extend({site_dirs!r})\n"
    env = {"PATH": os.environ.get("PATH", ""), "TF_CPP_MIN_LOG_LEVEL": str(log_level),
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", prelude + script, *args], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
