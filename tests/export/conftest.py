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


def reference_scores(model, tokenizer, texts, width=None):
    """Total log-likelihood and label count per text, in float64 numpy, window by window.

    The evaluation's convention, written out independently: the stream is
    [eos] + text + [eos], cut into non-overlapping windows of `width` tokens (default: the
    model's context).
    """
    context = width or model.sequence_length
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

    The script starts after an attempt to import keras_lm, whose error it finds in
    `keras_lm_error` (tests assert that it is set).

    `-I -S`: no current directory or script directory on sys.path, no PYTHON* variables,
    no site processing, so the editable install's .pth finder never runs; the venv's
    site-packages are appended by hand (plain directories, no .pth files).

    Returns:
        The running `subprocess.Popen` (text stdout and stderr piped).
    """
    paths = sysconfig.get_paths()
    site_dirs = sorted({paths["purelib"], paths["platlib"]})
    # The script can read `keras_lm_error`: why `import keras_lm` failed (None if it did not).
    prelude = (
        f"import sys\nsys.path.extend({site_dirs!r})\n"
        "try:\n    import keras_lm\n    keras_lm_error = None\n"
        "except ImportError as error:\n    keras_lm_error = repr(error)\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "TF_CPP_MIN_LOG_LEVEL": str(log_level),
           "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", prelude + script, *args], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


# ------------------------------------------------------------- encoder and seq2seq workdirs
def randomize(model, seed=0, stddev=0.3):
    """Draws every matrix of `model` from N(0, stddev): an untrained model whose outputs are
    decisive (distinct labels, spans, varied text) rather than near-uniform."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if len(variable.shape) >= 2:
            variable.assign(rng.normal(0.0, stddev, variable.shape).astype("float32"))
    return model


def save_weights(model, workdir, step):
    """Saves `model` as checkpoint `step` of `workdir`, as training leaves it."""
    checkpoint = model_checkpoint(model, step=tf.Variable(step, dtype=tf.int64))
    checkpoint.save(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR, "ckpt"))


def _encoder_sizes(config, row_length, positions):
    config.data.sequence_length = row_length
    config.model.update(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                        sequence_length=positions, dropout=0.0)


def classifier_workdir(directory, step=3):
    """A single-text classification workdir (3 labels) with random weights saved at `step`.

    Rows are 16 tokens while the backbone has 24 positions: the export must use the data's.
    """
    from keras_lm.data import labeled
    from keras_lm.tasks import classification

    os.makedirs(directory, exist_ok=True)
    sentences = TINY_TEXT.replace("\n", "").split(", ")
    for split in ("train", "validation"):
        lines = ["text\tlabel"] + [f"{s}\t{('past', 'present', 'future')[i % 3]}"
                                   for i, s in enumerate(sentences)]
        with open(os.path.join(directory, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    config = classification.default_config()
    config.data.source = os.path.join(directory, "{split}.tsv")
    _encoder_sizes(config, row_length=16, positions=24)
    config.model.pooling = "mean"  # varies more with the text than [CLS] at random weights
    config.classifier.dropout = 0.0
    workdir = os.path.join(directory, "workdir")
    workdir_lib.write_config(workdir, config)
    labels = labeled.label_vocabulary(e["label"] for e in
                                      classification.load_examples(config, "train"))
    labeled.save_labels(workdir, labels)
    tokenizer = classification.build_tokenizer(config, workdir)
    model = randomize(classification.build_model(config, tokenizer, len(labels)))
    save_weights(model, workdir, step)
    return workdir


def tagger_workdir(directory, step=3):
    """A tagging workdir (4 tags) with random weights saved at `step`.

    Rows are 16 tokens while the backbone has 24 positions: the export must use the data's.
    """
    from keras_lm.data import labeled
    from keras_lm.tasks import tagging

    os.makedirs(directory, exist_ok=True)
    sentences = TINY_TEXT.replace("\n", "").split(", ")
    tags = ("B-T", "I-T", "O", "B-E")
    for split in ("train", "validation"):
        lines = []
        for i, sentence in enumerate(sentences):
            lines += [f"{w} X {tags[(i + j) % 4]}" for j, w in enumerate(sentence.split())]
            lines.append("")
        with open(os.path.join(directory, f"{split}.conll"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    config = tagging.default_config()
    config.data.source = os.path.join(directory, "{split}.conll")
    _encoder_sizes(config, row_length=16, positions=24)
    config.classifier.dropout = 0.0
    workdir = os.path.join(directory, "workdir")
    workdir_lib.write_config(workdir, config)
    labels = labeled.label_vocabulary(t for s in tagging.load_sentences(config, "train")
                                      for t in s["tags"])
    labeled.save_labels(workdir, labels)
    tokenizer = tagging.build_tokenizer(config, workdir)
    model = randomize(tagging.build_model(config, tokenizer, len(labels)))
    save_weights(model, workdir, step)
    return workdir


def qa_workdir(directory, step=3):
    """A QA workdir (rows of 24 tokens, stride 6: long contexts span several windows) with
    random weights saved at `step`."""
    import json

    from keras_lm.tasks import question_answering

    os.makedirs(directory, exist_ok=True)
    context = TINY_TEXT.strip()
    answer = "the age of wisdom"
    squad = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [{
        "id": "q0", "question": "What was it?",
        "answers": [{"text": answer, "answer_start": context.index(answer)}]}]}]}]}
    for split in ("train", "validation"):
        with open(os.path.join(directory, f"{split}.json"), "w", encoding="utf-8") as f:
            json.dump(squad, f)
    config = question_answering.default_config()
    config.data.update(source=os.path.join(directory, "{split}.json"), stride=6,
                       max_question_tokens=8, max_answer_tokens=5)
    _encoder_sizes(config, row_length=24, positions=24)
    workdir = os.path.join(directory, "workdir")
    workdir_lib.write_config(workdir, config)
    tokenizer = question_answering.build_tokenizer(config, workdir)
    model = randomize(question_answering.build_model(config, tokenizer))
    save_weights(model, workdir, step)
    return workdir


def seq2seq_workdir(directory, step=3):
    """A seq2seq workdir with separate source and target vocabularies (sources 8 tokens,
    targets 8), random weights saved at `step`; `generate` defaults to beam 2."""
    from keras_lm.tasks import seq2seq

    os.makedirs(directory, exist_ok=True)
    words = TINY_TEXT.replace(",", "").split()
    pairs = [f"{a} {b}\t{b.upper()} {a.upper()}" for a, b in zip(words, words[1:])]
    with open(os.path.join(directory, "pairs.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(pairs) + "\n")
    config = seq2seq.default_config()
    config.data.update(source=os.path.join(directory, "pairs.tsv"), source_length=8,
                       target_length=8)
    config.target_tokenizer.type = "char"
    config.model.update(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32)
    config.evaluate.update(beam_sizes=(1, 3), length_penalty=0.6)
    config.sample.beam_size = 2
    workdir = os.path.join(directory, "workdir")
    workdir_lib.write_config(workdir, config)
    source_tokenizer, target_tokenizer = seq2seq.build_tokenizers(config, workdir)
    # This draw gives varied text, one output that stops early, beam 2 != greedy.
    model = randomize(seq2seq.build_model(config, source_tokenizer.vocabulary_size,
                                          target_tokenizer.vocabulary_size), seed=1, stddev=1.0)
    save_weights(model, workdir, step)
    return workdir
