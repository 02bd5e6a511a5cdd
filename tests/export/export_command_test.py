"""`keras-lm export` as a user runs it: --overwrite, an existing version, an n-gram workdir."""

import os
import subprocess
import sys

import pytest

from keras_lm import export
from keras_lm.tasks import language_model
from keras_lm.testing.configs import shrink
from keras_lm.testing.configs import write_tiny_corpus

from .conftest import untrained_workdir


def _keras_lm(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen([sys.executable, "-m", "keras_lm", "export", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_export_command(tmp_path):
    workdir = untrained_workdir(str(tmp_path / "gpt"), sequence_length=32)  # data: 16
    ngram = shrink(language_model.default_config(), write_tiny_corpus(str(tmp_path / "c")))
    ngram.model = dict(type="ngram", order=3)
    ngram_workdir = str(tmp_path / "ngram")
    language_model.train(ngram, ngram_workdir)  # counts: no gradient, no checkpoint
    replaced, kept = tmp_path / "replaced", tmp_path / "kept"
    for base in (replaced, kept):
        os.makedirs(base / "1")
        (base / "1" / "old.txt").write_text("version 1 before")

    processes = {  # one process each, side by side
        "overwrite": _keras_lm(f"--workdir={workdir}", f"--export_dir={replaced}",
                               "--version=1", "--overwrite"),
        "exists": _keras_lm(f"--workdir={workdir}", f"--export_dir={kept}", "--version=1"),
        "ngram": _keras_lm(f"--workdir={ngram_workdir}", f"--export_dir={tmp_path / 'n'}"),
        "no_export_dir": _keras_lm(f"--workdir={workdir}"),
    }
    out = {name: (p.communicate(timeout=300), p.returncode) for name, p in processes.items()}

    (stdout, stderr), code = out["overwrite"]
    assert code == 0, stderr[-3000:]
    assert stdout.strip().splitlines()[-1] == str(replaced / "1")
    assert not (replaced / "1" / "old.txt").exists()
    metadata = export.read_metadata(str(replaced / "1"))
    assert metadata["step"] == 3
    # `score` reads the training data's windows (as `evaluate` does), not the whole context.
    assert (metadata["score_length"], metadata["context_length"]) == (16, 32)

    (_, stderr), code = out["exists"]
    assert code == 1 and "already exists" in stderr and "--overwrite" in stderr
    assert "Traceback" not in stderr
    assert (kept / "1" / "old.txt").read_text() == "version 1 before"

    (stdout, stderr), code = out["ngram"]  # not a Keras model: exported as its tables
    assert code == 0, stderr[-3000:]
    assert stdout.strip().splitlines()[-1] == str(tmp_path / "n" / "1")
    assert export.read_metadata(str(tmp_path / "n" / "1"))["kind"] == "ngram_lm"

    (_, stderr), code = out["no_export_dir"]
    assert code != 0 and "export needs --export_dir" in stderr


def test_exported_score_equals_evaluate_on_the_same_text(tmp_path):
    import tensorflow as tf

    from keras_lm.testing.configs import TINY_TEXT

    # A model context (32) longer than the training windows (16): `evaluate` scores in
    # windows of 16, and so must the exported `score`.
    workdir = untrained_workdir(str(tmp_path / "gpt"), sequence_length=32)
    path = language_model.export(workdir, str(tmp_path / "out"))
    config, tokenizer, model, _ = language_model.load(workdir, "latest")
    text = TINY_TEXT[:40]  # 41 labels: 3 windows of 16
    metrics = language_model.evaluate_model(model, tokenizer, [text], 16, 4)
    out = tf.saved_model.load(path).signatures["score"](texts=tf.constant([text]))
    assert int(out["token_counts"][0]) == metrics["tokens"] == 41
    assert -float(out["log_likelihood"][0]) / 41 == pytest.approx(metrics["loss"], rel=1e-5)
