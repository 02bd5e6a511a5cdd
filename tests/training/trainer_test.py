import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lm.training import fit

from . import tiny_lm

TESTS_DIR = pathlib.Path(__file__).resolve().parent

CONFIG = dict(
    steps=10,
    eval_every=3,
    log_every=5,
    warmup_steps=2,
    learning_rate=0.05,
    min_learning_rate=0.005,
    keep_checkpoints=2,
    jit_compile=False,
    seed=3,
)


def run_fit(workdir, train_config=None, make_train_dataset=tiny_lm.make_train_dataset, **kwargs):
    kwargs.setdefault("build_model", tiny_lm.build_model)
    kwargs.setdefault("validation_dataset", tiny_lm.validation_dataset())
    return fit(
        make_train_dataset=make_train_dataset,
        workdir=workdir,
        train_config=train_config or CONFIG,
        tokens_per_step=32,
        **kwargs,
    )


def checkpoint_steps(directory):
    state = tf.train.get_checkpoint_state(directory)
    paths = state.all_model_checkpoint_paths if state else []
    return [int(path.rsplit("-", 1)[1]) for path in paths]


def test_fit_learns_evaluates_every_eval_every_steps_and_checkpoints(tmp_path):
    result = run_fit(tmp_path)
    assert (result.initial_step, result.final_step) == (0, 10)
    # Virtual epochs end at steps 3, 6, 9 and 10 (10 is not a multiple of 3).
    assert len(result.history["val_loss"]) == 4
    assert set(result.history) >= {
        "loss",
        "token_accuracy",
        "perplexity",
        "val_loss",
        "val_token_accuracy",
        "val_perplexity",
    }
    assert result.history["val_loss"][-1] < result.history["val_loss"][0] - 0.3
    assert result.history["loss"][-1] < result.history["loss"][0]
    # The last validation ran on the final weights: its perplexity is the exact token-level one.
    ids, labels, weights = tiny_lm.make_arrays(num_sequences=16, seed=1)
    token_losses = tiny_lm.numpy_cross_entropy(labels, result.model(ids).numpy())
    expected = np.exp(np.sum(weights * token_losses) / np.sum(weights))
    assert result.history["val_perplexity"][-1] == pytest.approx(expected, rel=1e-4)
    assert checkpoint_steps(tmp_path / "checkpoints") == [9, 10]  # keep_checkpoints=2
    best_step = [3, 6, 9, 10][int(np.argmin(result.history["val_loss"]))]
    assert checkpoint_steps(tmp_path / "checkpoints" / "best") == [best_step]
    assert int(result.model.optimizer.iterations.numpy()) == 10
    assert result.tokens_per_second > 0 and result.wall_time_s > 0
    if (tmp_path / "tensorboard").exists():  # only written when `tensorboard` is installed
        assert list((tmp_path / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert keras.config.dtype_policy().name == "float32"

    # The same workdir again: nothing left to train, the final state is restored.
    again = run_fit(tmp_path)
    assert (again.initial_step, again.final_step, again.history) == (10, 10, {})
    for a, b in zip(again.model.weights, result.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_validation_set_of_unknown_length_ends_without_keras_warning(tmp_path):
    # A filtered dataset has unknown cardinality (as the text pipelines' validation sets do):
    # Keras warns "Your input ran out of data; interrupting training" at the end of each of
    # its evaluations, which in `keras-lm train` read as if training had stopped.
    validation = tiny_lm.validation_dataset().filter(lambda *batch: True)
    assert validation.cardinality() == tf.data.UNKNOWN_CARDINALITY
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_fit(tmp_path, {**CONFIG, "steps": 6}, validation_dataset=validation)
    assert len(result.history["val_loss"]) == 2
    assert not [w for w in caught if "ran out of data" in str(w.message)]


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    ids, labels, weights = tiny_lm.make_arrays()
    weights = weights.copy()
    corrupt = weights[24:28]  # the 7th batch (step 7)
    corrupt[corrupt > 0] = np.nan

    def make(start):
        return tiny_lm.make_train_dataset(start, arrays=(ids, labels, weights))

    config = {**CONFIG, "eval_every": 4, "steps": 12}
    with pytest.raises(FloatingPointError, match=r"at step 7\. .*learning rate"):
        run_fit(tmp_path, config, make_train_dataset=make)
    assert checkpoint_steps(tmp_path / "checkpoints") == [4]
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-4"))
    names = [name for name, _ in tf.train.list_variables(str(tmp_path / "checkpoints" / "ckpt-4"))]
    tensors = [
        reader.get_tensor(name)
        for name in names
        if reader.get_variable_to_dtype_map()[name].is_floating
    ]
    assert tensors and all(np.all(np.isfinite(t)) for t in tensors)
    assert keras.config.dtype_policy().name == "float32"


def test_a_dataset_that_runs_out_is_an_error_not_a_silent_replay(tmp_path):
    short = lambda start: tiny_lm.make_train_dataset(start).take(4)  # noqa: E731
    with pytest.raises(ValueError, match=r"dataset ended after step 4.*make_train_dataset"):
        run_fit(tmp_path, make_train_dataset=short)
    assert checkpoint_steps(tmp_path / "checkpoints") == [3]  # nothing saved for the short epoch


def test_bad_inputs_fail_early(tmp_path):
    with pytest.raises(ValueError, match="learnig_rate"):
        run_fit(tmp_path, {"learnig_rate": 1e-3})

    class Lazy(keras.Model):
        def build(self, input_shape):
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="unbuilt Lazy"):
        run_fit(tmp_path, build_model=Lazy)
    with pytest.raises(ValueError, match="eval_steps"):
        run_fit(tmp_path, validation_dataset=tiny_lm.validation_dataset().repeat())


def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused(tmp_path, monkeypatch):
    from keras_lm.training import trainer

    class TwoReplicas:  # what fit reads of a 2-replica strategy, on the default devices
        num_replicas_in_sync = 2
        extended = tf.distribute.get_strategy().extended

        def scope(self):
            return tf.distribute.get_strategy().scope()

    monkeypatch.setattr(trainer, "create_strategy", lambda *args: TwoReplicas())
    odd = lambda start: tiny_lm.make_train_dataset(start, batch_size=3)  # noqa: E731
    with pytest.raises(ValueError, match=r"batch_size=3 is the global batch.*batch_size=2 or 4"):
        run_fit(tmp_path, make_train_dataset=odd)
    assert checkpoint_steps(tmp_path / "checkpoints") == []  # refused before the first step


def test_mixed_bfloat16_trains_and_restores_the_global_policy(tmp_path):
    result = run_fit(
        tmp_path, {**CONFIG, "steps": 3, "precision": "mixed_bfloat16"}, validation_dataset=None
    )
    assert result.model.layers[-1].compute_dtype == "bfloat16"
    assert result.model.layers[-1].kernel.dtype == "float32"
    assert np.isfinite(result.history["loss"]).all() and "val_loss" not in result.history
    assert not (tmp_path / "checkpoints" / "best").exists()
    assert keras.config.dtype_policy().name == "float32"


RESUME_SCRIPT = """
import json, os, sys, threading
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, {tests_dir!r})
import keras
import numpy as np
from absl import logging
import keras_lm.training as training
import tiny_lm

class Hang(keras.callbacks.Callback):
    # Stands for a crash in the middle of an epoch: blocks at one step until killed.
    def __init__(self, at_step):
        super().__init__()
        self.at_step, self.steps = at_step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == self.at_step:
            threading.Event().wait()

workdir, hang_at, output = sys.argv[1], int(sys.argv[2]), sys.argv[3]
logging.set_verbosity(logging.INFO)
result = training.fit(
    build_model=tiny_lm.build_model,
    make_train_dataset=tiny_lm.make_train_dataset,
    validation_dataset=tiny_lm.validation_dataset(),
    workdir=workdir,
    train_config=dict(steps=12, eval_every=4, log_every=2, warmup_steps=2, learning_rate=0.02,
                      keep_checkpoints=5, jit_compile=False, seed=7),
    tokens_per_step=32,
    extra_callbacks=[Hang(hang_at)] if hang_at else [],
)
np.savez(output, *[variable.numpy() for variable in result.model.weights])
print(json.dumps(dict(initial_step=result.initial_step, final_step=result.final_step,
                      history=result.history)))
"""


def start_script(script, *args, log):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(TESTS_DIR.parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )


def finish(process, log_path, timeout=180):
    stdout, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, pathlib.Path(log_path).read_text()[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_run(tmp_path):
    script = tmp_path / "train_tiny.py"
    script.write_text(RESUME_SCRIPT.format(tests_dir=str(TESTS_DIR)))
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("full", "crash", "resume")}
    full = start_script(script, tmp_path / "full", 0, tmp_path / "full.npz", log=logs["full"])
    crash = start_script(script, tmp_path / "run", 6, tmp_path / "crash.npz", log=logs["crash"])

    # Poll for the step-4 checkpoint, then kill -9 (the run is blocked at step 6 by then or
    # soon after; it cannot reach the step-8 checkpoint).
    deadline = time.monotonic() + 120
    while not checkpoint_steps(tmp_path / "run" / "checkpoints"):
        assert crash.poll() is None, (tmp_path / "crash.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        try:
            crash.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    crash.send_signal(signal.SIGKILL)
    crash.wait(timeout=30)
    assert crash.returncode == -signal.SIGKILL
    assert checkpoint_steps(tmp_path / "run" / "checkpoints") == [4]

    resume = start_script(script, tmp_path / "run", 0, tmp_path / "resumed.npz", log=logs["resume"])
    resumed = finish(resume, tmp_path / "resume.log")
    uninterrupted = finish(full, tmp_path / "full.log")
    for log in logs.values():
        log.close()

    assert (resumed["initial_step"], resumed["final_step"]) == (4, 12)
    assert "Restored" in (tmp_path / "resume.log").read_text()
    assert (uninterrupted["initial_step"], uninterrupted["final_step"]) == (0, 12)
    assert checkpoint_steps(tmp_path / "run" / "checkpoints") == [4, 8, 12]
    # Same weights as if never interrupted: no batch was repeated or skipped on resume.
    resumed_weights = np.load(tmp_path / "resumed.npz")
    full_weights = np.load(tmp_path / "full.npz")
    assert len(resumed_weights.files) == len(full_weights.files) > 0
    for name in full_weights.files:
        np.testing.assert_allclose(resumed_weights[name], full_weights[name], atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        resumed["history"]["val_loss"], uninterrupted["history"]["val_loss"][1:], atol=1e-5
    )


MIRRORED_SCRIPT = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
# Two logical CPUs; this must happen before TensorFlow initialises its devices.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {tests_dir!r})
import keras
from absl import logging
import keras_lm.training as training
import tiny_lm

logging.set_verbosity(logging.INFO)

class Losses(training.StepCallback):
    def __init__(self):
        super().__init__()
        self.values = []

    def on_step_end(self, step, logs):
        self.values.append(float(logs["loss"]))

results = {{}}
for strategy in ("default", "mirrored"):
    for name, loss in (("ours", None), ("keras", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"))):
        if name == "keras":
            # A copy of the data without out-of-vocabulary padding labels for Keras's loss.
            arrays = [abs(array) for array in tiny_lm.make_arrays()]
            make = lambda start: tiny_lm.make_train_dataset(start, arrays=arrays)
        else:
            make = tiny_lm.make_train_dataset
        losses = Losses()
        result = training.fit(
            build_model=tiny_lm.build_model, make_train_dataset=make,
            validation_dataset=tiny_lm.validation_dataset() if name == "ours" else None,
            workdir=os.path.join(sys.argv[1], strategy + name),
            # grad_clip_norm=0.1 keeps clipping active: it must act on the global gradient.
            train_config=dict(steps=8 if name == "ours" else 3, eval_every=4, warmup_steps=2,
                              learning_rate=0.02, grad_clip_norm=0.1, jit_compile=True,
                              strategy=strategy, seed=5),
            tokens_per_step=32, loss=loss, extra_callbacks=[losses])
        results[strategy + "/" + name] = dict(
            losses=losses.values, history=result.history,
            replicas=result.model.distribute_strategy.num_replicas_in_sync)
print(json.dumps(results))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpus_matches_the_default_strategy(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT.format(tests_dir=str(TESTS_DIR)))
    with open(tmp_path / "mirrored.log", "w") as log:
        results = finish(start_script(script, tmp_path, log=log), tmp_path / "mirrored.log")
    default, mirrored = results["default/ours"], results["mirrored/ours"]
    assert (default["replicas"], mirrored["replicas"]) == (1, 2)
    assert len(default["losses"]) == len(mirrored["losses"]) == 8
    # Same global batch, same objective: the same curve, step by step, with uneven padding
    # across the two replicas.
    np.testing.assert_allclose(mirrored["losses"], default["losses"], rtol=1e-5)
    for name in ("val_loss", "val_perplexity", "val_token_accuracy"):
        np.testing.assert_allclose(mirrored["history"][name], default["history"][name], rtol=1e-5)
    # jit_compile=True was asked for; it is dropped for mirrored CPUs (or the run would fail).
    assert "jit_compile=True turned off" in (tmp_path / "mirrored.log").read_text()
    # Control: Keras's per-replica "mean_with_sample_weight" averages per-replica means, which
    # differs from the global token mean when padding is uneven; the test can tell the two apart.
    keras_default, keras_mirrored = results["default/keras"], results["mirrored/keras"]
    assert np.max(np.abs(np.subtract(keras_mirrored["losses"], keras_default["losses"]))) > 1e-3


def test_validation_data_has_autotuning_off_and_keeps_its_batches():
    # A new validation iterator is made at every evaluation; with tf.data's autotuning on,
    # deleting it waits for the autotuner's next tick (seconds). The batches are unchanged.
    from keras_lm.training.trainer import _validation_data

    dataset = tf.data.Dataset.range(10).batch(2)
    assert dataset.options().autotune.enabled is not False
    for eval_steps, expected in [(3, [[0, 1], [2, 3], [4, 5]]), (None, None)]:
        validation = _validation_data(dataset, eval_steps)
        assert validation.options().autotune.enabled is False
        batches = [batch.numpy().tolist() for batch in validation]
        assert batches == (expected or [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
    with pytest.raises(ValueError, match="infinite"):
        _validation_data(dataset.repeat(), None)
    assert _validation_data(None, 3) is None


def test_fit_warns_when_the_caching_allocator_came_too_late(tmp_path, monkeypatch, caplog):
    import logging as std_logging

    from keras_lm import host_memory

    monkeypatch.setattr(host_memory, "_status", "too_late")
    monkeypatch.setattr(host_memory, "onednn_enabled", lambda: False)  # TF's default: malloc
    with caplog.at_level(std_logging.WARNING, logger="absl"):
        run_fit(tmp_path, dict(CONFIG, steps=1, eval_every=1), validation_dataset=None)
    hints = [record for record in caplog.records if "Import keras_lm first" in record.getMessage()]
    assert len(hints) == 1 and hints[0].levelno == std_logging.WARNING

    monkeypatch.setattr(host_memory, "_status", "enabled")
    caplog.clear()
    with caplog.at_level(std_logging.WARNING, logger="absl"):
        run_fit(tmp_path / "second", dict(CONFIG, steps=1, eval_every=1), validation_dataset=None)
    assert not any("Import keras_lm first" in r.getMessage() for r in caplog.records)
