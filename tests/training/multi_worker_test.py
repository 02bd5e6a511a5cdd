"""`keras-lm train` with strategy='multi_worker': two worker processes on this machine.

The workers share one workdir (as on a shared filesystem) and must train exactly what one
process trains with the default strategy: the same global batches, split over the workers,
gradients all-reduced. A resume continues from the shared checkpoint, as a resume of the
one process does.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from keras_lm.testing.configs import write_tiny_corpus

CONFIG = '''
from keras_lm.tasks.language_model import default_config
from keras_lm.testing.configs import shrink


def get_config():
    config = shrink(default_config(), {source!r}, steps=6)
    config.train.eval_every = 2
    config.train.jit_compile = False
    config.train.learning_rate = 0.01  # big enough for the curve to move
    return config
'''


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _train(config, workdir, tmp, *overrides, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(tmp))
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-m", "keras_lm", "train", f"--config={config}",
         f"--workdir={workdir}", *overrides],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait(processes):
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _workers(config, workdir, tmp, *overrides):
    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
    return [
        _train(config, workdir, tmp, "--config.train.strategy=multi_worker", *overrides,
               tf_config={"cluster": cluster, "task": {"type": "worker", "index": index}})
        for index in range(2)
    ]


@pytest.mark.slow
def test_two_workers_train_like_one_process_and_resume(tmp_path):
    source = write_tiny_corpus(str(tmp_path / "corpus"))
    config = tmp_path / "tiny.py"
    config.write_text(CONFIG.format(source=source))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    single, shared = str(tmp_path / "single"), str(tmp_path / "shared")

    # 4 steps, then a resume to 6 (train.steps may grow on a resume): in one process with
    # the default strategy, and on two workers sharing a workdir.
    four = "--config.train.steps=4"
    _wait([_train(config, single, scratch, four), *_workers(config, shared, scratch, four)])
    _wait([_train(config, single, scratch), *_workers(config, shared, scratch)])

    expected, got = _metrics(single), _metrics(shared)
    # The chief alone writes the logs: one line per evaluation, not one per worker.
    assert [m["step"] for m in got] == [m["step"] for m in expected] == [2, 4, 6]
    for name in ("loss", "val_loss", "token_accuracy", "val_token_accuracy"):
        np.testing.assert_allclose([m[name] for m in got], [m[name] for m in expected],
                                   rtol=2e-5, err_msg=name)
    assert expected[0]["loss"] - expected[-1]["loss"] > 0.05  # the curve moved
    # The chief alone writes TensorBoard events: one file per run.
    assert len(os.listdir(os.path.join(shared, "tensorboard", "train"))) == 2
    assert os.listdir(scratch) == []  # the non-chief worker's scratch checkpoints are gone
