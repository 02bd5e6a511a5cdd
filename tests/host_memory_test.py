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
                  "hint": host_memory.caching_allocator_hint(), "faults": faults}))
"""
_PAGES_OF_64_MIB = 64 * 2**20 // 4096


def _run(mode, env_value=None):
    env = dict(os.environ)
    env.pop(host_memory.ENV_VAR, None)
    if env_value is not None:
        env[host_memory.ENV_VAR] = env_value
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
    # Without it (next test) every call faults in the whole 64 MiB result again.
    assert default_run["faults"] < _PAGES_OF_64_MIB / 10, default_run


def test_a_users_setting_is_kept_and_malloc_faults_every_call(default_run):
    run = _run("import_first", env_value="false")
    assert run["status"] == "user"
    assert run["env"] == "false"
    assert run["hint"] is None
    assert run["faults"] > _PAGES_OF_64_MIB / 2, run  # the reference: malloc's fresh pages
    assert run["faults"] > 10 * default_run["faults"]


def test_too_late_after_an_op_says_how_to_fix_it():
    run = _run("op_first")
    assert run["status"] == "too_late"
    assert run["env"] is None  # not set: it would mislead, TensorFlow already chose
    assert "Import keras_lm first" in run["hint"]
    assert host_memory.ENV_VAR + "=true" in run["hint"]


def test_hint_only_when_too_late(monkeypatch):
    for status, has_hint in [("enabled", False), ("user", False), ("too_late", True)]:
        monkeypatch.setattr(host_memory, "_status", status)
        assert (host_memory.caching_allocator_hint() is not None) == has_hint
    monkeypatch.setattr(host_memory, "_status", "enabled")
    assert host_memory.use_caching_allocator() == "enabled"  # idempotent: decided once
