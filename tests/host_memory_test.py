"""keras_lm turns on TensorFlow's caching CPU allocator at import (keras_lm/host_memory.py)."""

import json
import os
import subprocess
import sys

import pytest

from keras_lm import host_memory

# Run in a fresh process: the allocator is chosen once, when TensorFlow's context starts.
# Prints the allocator status, the variable, and the page faults of one call that returns a
# fresh 64 MiB tensor computed under XLA (malloc maps such blocks anew on every call).
# TensorFlow's default allocator depends on the CPU: oneDNN's (caching) where its oneDNN
# optimizations are on by default (AVX-512 VNNI/bfloat16, AMX), malloc elsewhere. The runs
# fix TF_ENABLE_ONEDNN_OPTS, so each test checks the same thing on every machine.
_SCRIPT = """
import json, resource, sys
if sys.argv[1] == "op_first":
    import tensorflow as tf
    tf.constant(1.0) + 1.0
import os
import keras_lm
import tensorflow as tf
from keras_lm import host_memory

@tf.function(jit_compile=True)
def product(a, b):
    return tf.matmul(a, b) + 1.0

a, b = tf.ones([4096, 16]), tf.ones([16, 4096])
for _ in range(3):
    product(a, b).shape
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    assert float(product(a, b)[-1, -1]) == 17.0
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(json.dumps({"status": host_memory.status(), "env": os.environ.get(host_memory.ENV_VAR),
                  "hint": host_memory.caching_allocator_hint(), "faults": faults,
                  "allocator": host_memory.default_allocator()}))
"""
_PAGES_OF_64_MIB = 64 * 2**20 // 4096


def _run(mode, env_value=None, onednn="0"):
    env = dict(os.environ)
    env.pop(host_memory.ENV_VAR, None)
    if env_value is not None:
        env[host_memory.ENV_VAR] = env_value
    env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    result = subprocess.run([sys.executable, "-c", _SCRIPT, mode], env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default_run():
    return _run("import_first")


def test_import_turns_the_caching_allocator_on_and_page_faults_stop(default_run):
    assert default_run["status"] == "enabled"
    assert default_run["env"] == "true"
    assert default_run["hint"] is None
    assert default_run["allocator"] == "bfc"
    # Without it (next test) every call faults in the whole 64 MiB result again.
    assert default_run["faults"] < _PAGES_OF_64_MIB / 10, default_run


def test_a_users_setting_is_kept_and_malloc_faults_every_call(default_run):
    run = _run("import_first", env_value="false")
    assert run["status"] == "user"
    assert run["env"] == "false"
    assert run["hint"] is None
    assert run["allocator"] == "malloc"
    assert run["faults"] > _PAGES_OF_64_MIB / 2, run  # the reference: malloc's fresh pages
    assert run["faults"] > 10 * default_run["faults"]


def test_with_onednn_on_tensorflows_default_allocator_already_caches():
    # Why the allocator gains nothing on CPUs where TensorFlow turns oneDNN on by default.
    run = _run("import_first", env_value="false", onednn="1")
    assert run["allocator"] == "onednn"
    assert run["faults"] < _PAGES_OF_64_MIB / 10, run


def test_too_late_after_an_op_says_how_to_fix_it():
    run = _run("op_first")
    assert run["status"] == "too_late"
    assert run["env"] is None  # not set: it would mislead, TensorFlow already chose
    assert "Import keras_lm first" in run["hint"]
    assert host_memory.ENV_VAR + "=true" in run["hint"]
    assert run["allocator"] == "malloc"
    # Where oneDNN's allocator is the default, nothing is lost, and nothing is said.
    run = _run("op_first", onednn="1")
    assert run["status"] == "too_late"
    assert run["allocator"] == "onednn"
    assert run["hint"] is None


def test_hint_only_when_too_late_and_the_default_is_malloc(monkeypatch):
    for status, onednn, has_hint in [("enabled", False, False), ("user", False, False),
                                     ("too_late", False, True), ("too_late", True, False)]:
        monkeypatch.setattr(host_memory, "_status", status)
        monkeypatch.setattr(host_memory, "onednn_enabled", lambda onednn=onednn: onednn)
        assert (host_memory.caching_allocator_hint() is not None) == has_hint
    monkeypatch.setattr(host_memory, "_status", "enabled")
    assert host_memory.use_caching_allocator() == "enabled"  # idempotent: decided once
