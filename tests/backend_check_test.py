import os
import subprocess
import sys


def _import_in_fresh_process(env_backend):
    env = dict(os.environ)
    env.pop("KERAS_BACKEND", None)
    if env_backend is not None:
        env["KERAS_BACKEND"] = env_backend
    code = "import keras_lm, keras; print('backend=' + keras.config.backend())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)


def test_other_backend_fails_with_the_fix():
    result = _import_in_fresh_process("jax")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "KERAS_BACKEND=tensorflow" in result.stderr
    assert "Received: KERAS_BACKEND='jax'" in result.stderr


def test_unset_backend_selects_tensorflow():
    result = _import_in_fresh_process(None)
    assert result.returncode == 0, result.stderr
    assert "backend=tensorflow" in result.stdout
