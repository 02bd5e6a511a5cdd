"""The keras-lm command end to end, in subprocesses as a user runs it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from keras_lm.testing.configs import write_tiny_corpus

CONFIG = '''
from keras_lm.tasks.language_model import default_config
from keras_lm.testing.configs import shrink


def get_config():
    config = shrink(default_config(), {source!r}, steps={steps})
    config.train.eval_every = {eval_every}
    config.train.jit_compile = False  # compiles faster: these runs are a few steps long
    return config
'''


def _env():
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _keras_lm(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "keras_lm", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env())


@pytest.fixture
def config_file(tmp_path):
    def make(steps, eval_every):
        source = write_tiny_corpus(str(tmp_path / "corpus"))
        path = tmp_path / f"tiny_{steps}.py"
        path.write_text(CONFIG.format(source=source, steps=steps, eval_every=eval_every))
        return str(path)

    return make


@pytest.mark.slow
def test_train_evaluate_generate(tmp_path, config_file):
    workdir = str(tmp_path / "run")
    result = _keras_lm("train", f"--config={config_file(6, 3)}", f"--workdir={workdir}",
                       "--config.train.learning_rate=0.005")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 6/6" in result.stderr and "tokens/s" in result.stderr
    assert "validation @ step 6: loss=" in result.stdout
    assert "--- sample" in result.stdout
    assert os.path.isfile(os.path.join(workdir, "config.json"))

    result = _keras_lm("evaluate", f"--workdir={workdir}", "--split=test")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test @ step 6:" in result.stdout and "bits_per_character=" in result.stdout

    result = _keras_lm("generate", f"--workdir={workdir}", "--prompt=it was",
                       "--max_new_tokens=5", "--temperature=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("it was") and len(result.stdout.rstrip("\n")) >= 6

    # A prompt too long for the 16-token context: a one-line error naming the fix.
    result = _keras_lm("generate", f"--workdir={workdir}", "--prompt=" + "x" * 14,
                       "--max_new_tokens=5")
    assert result.returncode == 1
    assert "exceeds the model's context of 16 tokens" in result.stderr
    assert "truncate" in result.stderr and "Traceback" not in result.stderr
    result = _keras_lm("generate", f"--workdir={workdir}", "--prompt=" + "x" * 14,
                       "--max_new_tokens=5", "--truncate")
    assert result.returncode == 0, result.stderr[-3000:]


def _keras_lm_concurrently(*arg_lists, timeout=300):
    """`_keras_lm` for several commands at once (each pays the TensorFlow import)."""
    processes = [subprocess.Popen([sys.executable, "-m", "keras_lm", *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=_env()) for args in arg_lists]
    results = []
    for process, args in zip(processes, arg_lists):
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


def _error_lines(stderr):
    """stderr without TensorFlow's C++ start-up logging."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(
        ("I0000", "W0000", "E0000", "WARNING: All log messages"))]


def test_unknown_override_lists_valid_fields(config_file, tmp_path):
    """As a user runs it: one error line, no traceback (the in-process tests cover more forms;
    a bad override value is only checked here, as ml_collections defines its override flags
    for good in the process that parses them)."""
    config = config_file(2, 1)
    workdir = f"--workdir={tmp_path}/w"
    misspelt, bad_value = _keras_lm_concurrently(
        ["train", "--config", config, workdir, "--config.train.stepz=3"],  # absl's other form
        ["train", f"--config={config}", workdir, "--config.train.steps=abc"])
    assert misspelt.returncode == 1, misspelt.stderr[-3000:]
    assert "Traceback" not in misspelt.stderr
    [line] = _error_lines(misspelt.stderr)
    assert line.startswith(
        "keras-lm train: error: Unknown config field 'train.stepz' in --config.train.stepz: "
        "config.train has no field 'stepz'. Valid fields of config.train: [")
    assert "'steps'" in line
    assert bad_value.returncode == 1, bad_value.stderr[-3000:]
    assert _error_lines(bad_value.stderr) == [
        "keras-lm train: error: flag --config.train.steps=abc: invalid literal for int() with "
        "base 10: 'abc'"]


def _parse_in_process(monkeypatch, capsys, *args):
    """Parses `keras-lm ARGS...`'s flags here: (exit status or None, stderr lines)."""
    from absl import flags

    from keras_lm import main

    argv = ["keras-lm", *args]
    monkeypatch.setattr(sys, "argv", argv)  # ml_collections reads overrides from sys.argv
    code = None
    try:
        main._parse_flags(argv)
    except SystemExit as error:
        code = error.code
    finally:
        flags.FLAGS.unparse_flags()
    return code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("args, error", [
    (["evaluate", "--workdir=w", "--promt=hi"],
     "keras-lm evaluate: error: Unknown command line flag 'promt'. Did you mean: prompt ?"),
    (["evaluate", "--workdir=w", "--split=dev"],
     "keras-lm evaluate: error: flag --split=dev: value should be one of "
     "<train|validation|test>"),
    (["generate", "--workdir=w", "--prompt=hi", "--max_new_tokens=abc"],
     "keras-lm generate: error: flag --max_new_tokens=abc: invalid literal for int() with "
     "base 10: 'abc'"),
    (["train", "--config=missing.py", "--workdir=w"],
     "keras-lm train: error: Config file not found: --config=missing.py"),
    (["train", "--config", "missing.py", "--workdir=w"],
     "keras-lm train: error: Config file not found: --config=missing.py"),
])
def test_flag_errors_are_one_line(monkeypatch, capsys, args, error):
    assert _parse_in_process(monkeypatch, capsys, *args) == (1, [error])


@pytest.mark.parametrize("form", ["--config={}", "--config {}", "-config {}"])
def test_misspelt_override_in_every_config_form(monkeypatch, capsys, config_file, form):
    config_args = form.format(config_file(2, 1)).split(" ")
    code, lines = _parse_in_process(monkeypatch, capsys, "train", *config_args, "--workdir=w",
                                    "--config.model.hiden_dim=8")
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(
        "keras-lm train: error: Unknown config field 'model.hiden_dim' in "
        "--config.model.hiden_dim: config.model has no field 'hiden_dim'.")
    assert "'hidden_dim'" in lines[0]


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory):
    """A 2-step char GPT workdir (context 16), trained in this process."""
    from keras_lm.tasks import language_model
    from keras_lm.testing.configs import shrink

    directory = tmp_path_factory.mktemp("tiny_lm")
    config = shrink(language_model.default_config(),
                    write_tiny_corpus(str(directory / "corpus")), steps=2)
    config.train.jit_compile = False
    workdir = str(directory / "run")
    language_model.train(config, workdir)
    return workdir


def _run_in_process(monkeypatch, capsys, *args):
    """`keras-lm ARGS...` in this process: (exit status, stdout, stderr)."""
    from absl import flags

    from keras_lm import main

    argv = ["keras-lm", *args]
    monkeypatch.setattr(sys, "argv", argv)
    code = 0
    try:
        main.main(main._parse_flags(argv))
    except SystemExit as error:
        code = error.code
    finally:
        flags.FLAGS.unparse_flags()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_fills_the_context_by_default(monkeypatch, capsys, tiny_workdir):
    code, out, err = _run_in_process(monkeypatch, capsys, "generate",
                                     f"--workdir={tiny_workdir}", "--prompt=it was",
                                     "--temperature=0")
    assert code == 0, err
    assert out.startswith("it was") and len(out.rstrip("\n")) <= 16  # 6 + at most 10 new


def test_generate_too_many_new_tokens_names_the_flags(monkeypatch, capsys, tiny_workdir):
    code, out, err = _run_in_process(monkeypatch, capsys, "generate",
                                     f"--workdir={tiny_workdir}", "--prompt=it was",
                                     "--max_new_tokens=12")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "keras-lm generate: error: A prompt of 6 tokens plus --max_new_tokens=12 exceeds the "
        "model's context of 16 tokens. Pass a smaller --max_new_tokens (at most 10 here; leave "
        "it out to fill the context), shorten the prompt, or pass --truncate (keeps the last 4 "
        "prompt tokens)."]
    code, out, err = _run_in_process(monkeypatch, capsys, "generate",
                                     f"--workdir={tiny_workdir}", "--prompt=it was",
                                     "--max_new_tokens=200")
    assert code == 1 and err.splitlines() == [
        "keras-lm generate: error: --max_new_tokens=200 does not fit the model's context of 16 "
        "tokens: give 1 to 10 after this 6-token prompt, or leave it out to fill the context."]


def test_usage_errors(tmp_path):
    result = _keras_lm("fly", f"--workdir={tmp_path}")
    assert result.returncode != 0 and "train | evaluate | generate" in result.stderr
    result = _keras_lm("evaluate", f"--workdir={tmp_path}/missing")
    assert result.returncode != 0 and "not a keras_lm workdir" in result.stderr


def test_a_file_as_workdir_is_named(config_file, tmp_path):
    path = tmp_path / "a_file"
    path.write_text("")
    result = _keras_lm("train", f"--config={config_file(2, 1)}", f"--workdir={path}")
    assert result.returncode == 1
    assert f"--workdir={path} is a file, but the workdir must be a directory" in result.stderr
    assert "Errno" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_resume_after_kill(tmp_path, config_file):
    """SIGKILL mid-run, restart: it continues from the saved step and ends at the total."""
    workdir = str(tmp_path / "run")
    config = config_file(60, 5)
    args = [sys.executable, "-m", "keras_lm", "train", f"--config={config}",
            f"--workdir={workdir}"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=_env(), text=True)
    marker = os.path.join(workdir, "checkpoints", "ckpt-10.index")
    deadline = time.monotonic() + 240
    while not os.path.exists(marker) and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    # The newest *complete* checkpoint: the index file names it only once all its data is
    # written, so a kill during a save resumes from the one before (5 here, at worst).
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(os.path.dirname(marker))
    killed_at = int(latest.rsplit("-", 1)[1])
    assert 5 <= killed_at < 60

    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"(step {killed_at}" in result.stderr  # "Restored .../ckpt-N (step N, ...)"
    assert f"Training steps {killed_at + 1}..60 of 60" in result.stderr
    assert "step 60/60" in result.stderr
    assert os.path.exists(os.path.join(workdir, "checkpoints", "ckpt-60.index"))


CLASSIFIER_CONFIG = '''
from keras_lm.tasks import classification


def get_config():
    config = classification.default_config()
    config.data.update(source={source!r}, text_column="text", label_column="label",
                       sequence_length=12)
    config.model.update(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                        sequence_length=12, dropout=0.0)
    config.classifier.dropout = 0.0
    config.train.update(steps=30, batch_size=8, learning_rate=1e-2, warmup_steps=2,
                        eval_every=15, log_every=15, jit_compile=False)
    return config
'''


@pytest.mark.slow
def test_classifier_train_and_predict(tmp_path):
    """`keras-lm predict` prints the label of a text (a task other than language modelling)."""
    for split, n in (("train", 48), ("validation", 8)):
        rows = ["text\tlabel"] + [f"{'good' if i % 2 else 'bad'} day {i % 5}\t"
                                  f"{'pos' if i % 2 else 'neg'}" for i in range(n)]
        (tmp_path / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "classifier.py"
    config.write_text(CLASSIFIER_CONFIG.format(source=str(tmp_path / "{split}.tsv")))
    workdir = str(tmp_path / "run")
    result = _keras_lm("train", f"--config={config}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    result = _keras_lm("evaluate", f"--workdir={workdir}")
    assert result.returncode == 0 and "accuracy=1.0000" in result.stdout, result.stdout
    result = _keras_lm("predict", f"--workdir={workdir}", "--text=good day 3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("pos\t")


SEQ2SEQ_CONFIG = '''
import runpy


def get_config():
    config = runpy.run_path({path!r})["get_config"]()
    config.data.source_options.update(num_examples=200, max_digits=4)
    config.data.update(source_length=5, target_length=5)
    config.model.update(num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2)
    config.train.update(steps=4, eval_every=2, log_every=2, batch_size=8, jit_compile=False)
    config.evaluate.update(beam_sizes=(2,), max_examples=8, jit_compile=False)
    return config
'''


@pytest.mark.slow
def test_seq2seq_train_and_generate_with_beam_search(tmp_path, repo_root):
    config = tmp_path / "reverse.py"
    config.write_text(SEQ2SEQ_CONFIG.format(path=str(repo_root / "configs" / "reverse_digits.py")))
    workdir = str(tmp_path / "run")
    result = _keras_lm("train", f"--config={config}", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    result = _keras_lm("generate", f"--workdir={workdir}", "--text=123", "--text=9081",
                       "--beam_size=2")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(set(line) <= set("0123456789 ") for line in lines)
