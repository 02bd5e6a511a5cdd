import logging
import os
import subprocess
import sys
import types

import keras
import pytest
import tensorflow as tf

from keras_lm.training import create_strategy
from keras_lm.training import resolve_jit_compile
from keras_lm.training import set_precision


def fake_strategy(*devices):
    """The two attributes resolve_jit_compile reads, for device layouts this host lacks."""
    extended = types.SimpleNamespace(worker_devices=tuple(devices))
    return types.SimpleNamespace(num_replicas_in_sync=len(devices), extended=extended)


CPU = "/job:localhost/replica:0/task:0/device:CPU:{}"
GPU = "/job:localhost/replica:0/task:0/device:GPU:{}"


def test_jit_compile_is_turned_off_only_for_multi_replica_cpu_strategies(caplog):
    two_cpus = fake_strategy(CPU.format(0), CPU.format(1))
    # The absl logger's own level: another test (or absl's app.run) may have raised it.
    with caplog.at_level(logging.INFO, logger="absl"):
        assert resolve_jit_compile(two_cpus, True) is False
    assert "jit_compile=True turned off" in caplog.text and "CPU" in caplog.text
    assert resolve_jit_compile(two_cpus, "auto") is False
    assert resolve_jit_compile(two_cpus, False) is False
    assert resolve_jit_compile(fake_strategy(GPU.format(0), GPU.format(1)), True) is True
    assert (
        resolve_jit_compile(
            fake_strategy(
                "/job:worker/replica:0/task:0/device:TPU:0",
                "/job:worker/replica:0/task:0/device:TPU:1",
            ),
            True,
        )
        is True
    )
    assert resolve_jit_compile(fake_strategy(CPU.format(0)), True) is True
    assert resolve_jit_compile(tf.distribute.get_strategy(), True) is True
    assert resolve_jit_compile(tf.distribute.get_strategy(), False) is False


def test_create_strategy_default_and_errors():
    assert create_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="strategy.*'mirored'"):
        create_strategy("mirored")
    # This host has no TPU: a clear error, not a hang or a TF traceback. In a fresh process:
    # TPU discovery resets TensorFlow's context, which waits for whatever earlier tests left
    # running in this one (once 50 s under pytest-xdist).
    script = (
        "from keras_lm.training import create_strategy\n"
        "try:\n"
        "    create_strategy('tpu', tpu='local')\n"
        "except ValueError as error:\n"
        "    print('ValueError:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ValueError: strategy='tpu' found no TPU (tpu='local')" in result.stdout


def test_create_mirrored_strategy_uses_the_local_devices():
    strategy = create_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    expected = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    assert strategy.num_replicas_in_sync == len(expected)


def test_set_precision():
    set_precision("mixed_bfloat16")
    policy = keras.config.dtype_policy()
    assert (policy.compute_dtype, policy.variable_dtype) == ("bfloat16", "float32")
    set_precision("float32")
    assert keras.config.dtype_policy().compute_dtype == "float32"
    with pytest.raises(ValueError, match="precision.*'bfloat16'"):
        set_precision("bfloat16")


def test_jit_compile_is_turned_off_for_bfloat16_on_cpu_only(caplog, monkeypatch):
    from keras_lm.training import strategy as strategy_module

    # A CPU with bfloat16 matmul instructions (the case where oneDNN is faster than XLA).
    monkeypatch.setattr(strategy_module, "cpu_has_bfloat16_matmul", lambda: True)
    one_cpu = fake_strategy(CPU.format(0))
    with caplog.at_level(logging.INFO, logger="absl"):
        assert resolve_jit_compile(one_cpu, True, "mixed_bfloat16") is False
    assert "mixed_bfloat16 on CPU" in caplog.text and "oneDNN" in caplog.text
    assert resolve_jit_compile(one_cpu, True, "float32") is True
    assert resolve_jit_compile(one_cpu, True, "mixed_float16") is True
    assert resolve_jit_compile(fake_strategy(GPU.format(0), GPU.format(1)), True, "mixed_bfloat16")
    assert resolve_jit_compile(tf.distribute.get_strategy(), True, "mixed_bfloat16") is False
    assert resolve_jit_compile(one_cpu, False, "mixed_bfloat16") is False


def test_bfloat16_keeps_xla_on_a_cpu_without_bfloat16_instructions(caplog, monkeypatch):
    from keras_lm.training import strategy as strategy_module

    one_cpu = fake_strategy(CPU.format(0))
    monkeypatch.setattr(strategy_module, "cpu_has_bfloat16_matmul", lambda: False)
    with caplog.at_level(logging.INFO, logger="absl"):
        assert resolve_jit_compile(one_cpu, True, "mixed_bfloat16") is True
    assert "without bfloat16 matmul instructions" in caplog.text
    monkeypatch.setattr(strategy_module, "cpu_has_bfloat16_matmul", lambda: None)  # unknown
    assert resolve_jit_compile(one_cpu, True, "mixed_bfloat16") is False
    monkeypatch.setattr(strategy_module, "cpu_has_bfloat16_matmul", lambda: True)
    assert resolve_jit_compile(one_cpu, True, "mixed_bfloat16") is False


@pytest.mark.parametrize(
    "flags, expected",
    [("fpu sse avx2 fma", False), ("fpu avx512f avx512_bf16 avx2", True),
     ("fpu amx_bf16 amx_tile", True), (None, None)],
)
def test_cpu_has_bfloat16_matmul_reads_the_cpu_flags(tmp_path, flags, expected):
    from keras_lm.training.strategy import cpu_has_bfloat16_matmul

    cpuinfo = tmp_path / "cpuinfo"
    lines = ["processor\t: 0", "vendor_id\t: AuthenticAMD"]
    if flags is not None:
        lines.append(f"flags\t\t: {flags}")
    cpuinfo.write_text("\n".join(lines) + "\n")
    assert cpu_has_bfloat16_matmul(str(cpuinfo)) is expected
    assert cpu_has_bfloat16_matmul(str(tmp_path / "missing")) is None


def test_tpu_address_without_a_tpu_fails_fast_instead_of_hanging():
    import socket
    import time

    with socket.socket() as probe:  # a local port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    # Before the fix TensorFlow waited forever for a server at this address.
    with pytest.raises(ValueError, match=rf"found no TPU \(tpu='grpc://127.0.0.1:{port}'\).*"
                                         "refused.*strategy='default' or 'mirrored'"):
        create_strategy("tpu", tpu=f"grpc://127.0.0.1:{port}")
    assert time.perf_counter() - start < 5
    with pytest.raises(ValueError, match="found no TPU.*grpc://HOST:PORT"):
        create_strategy("tpu", tpu="grpc://")


def test_tpu_name_lookup_failure_is_a_clear_error(monkeypatch):
    import urllib.error

    def no_network(*args, **kwargs):  # what the Cloud TPU API lookup raises offline
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", no_network)
    with pytest.raises(ValueError, match="found no TPU \\(tpu='my-tpu'\\).*Name or service"):
        create_strategy("tpu", tpu="my-tpu")


@pytest.mark.parametrize("name", ["default", "mirrored", "multi_worker"])
def test_a_tpu_address_with_another_strategy_is_an_error(name):
    with pytest.raises(ValueError, match=f"only used by strategy='tpu', but strategy='{name}'"):
        create_strategy(name, tpu="grpc://10.0.0.2:8470")


def test_multi_worker_needs_a_tf_config_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    # Before the fix: a silent single-worker strategy (each machine training alone).
    with pytest.raises(ValueError, match="multi_worker.*TF_CONFIG.*not set.*'mirrored'"):
        create_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{cluster: }")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON.*Set TF_CONFIG"):
        create_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"task": {"type": "worker", "index": 0}}')
    with pytest.raises(ValueError, match="TF_CONFIG has no `cluster`"):
        create_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1", "localhost:2"]}}')
    with pytest.raises(ValueError, match="not a usable cluster.*task_type"):
        create_strategy("multi_worker")


def test_multi_worker_after_the_first_op_names_the_fix(monkeypatch):
    tf.constant(1.0) + 1.0  # TensorFlow is initialised: collective ops can no longer be set.
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:2"]}, '
                                    '"task": {"type": "worker", "index": 0}}')
    with pytest.raises(RuntimeError, match="before TensorFlow runs its first op.*"
                                           "create_strategy\\('multi_worker'\\) at the very start"):
        create_strategy("multi_worker")


def test_global_batch_size_must_split_over_the_replicas():
    from keras_lm.training.strategy import check_global_batch_size

    two_cpus = fake_strategy(CPU.format(0), CPU.format(1))
    for batch_size in (2, 12):
        check_global_batch_size(two_cpus, batch_size)
    check_global_batch_size(tf.distribute.get_strategy(), 5)  # one replica: any size
    with pytest.raises(ValueError, match="batch_size=5 is the global batch.*multiple of the 2 "
                                         "replicas.*Use batch_size=4 or 6"):
        check_global_batch_size(two_cpus, 5)
    with pytest.raises(ValueError, match="Use batch_size=8\\.$"):
        check_global_batch_size(fake_strategy(*[GPU.format(i) for i in range(8)]), 3)
    with pytest.raises(ValueError, match="positive int.*0"):
        check_global_batch_size(two_cpus, 0)


MIRRORED_RNN_SCRIPT = r"""
import json
import numpy as np
import tensorflow as tf
# Two logical CPUs; this must happen before TensorFlow initialises its devices.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_lm.models import RecurrentLM
from keras_lm.training import MaskedSparseCrossEntropy, create_strategy
from keras_lm.training.strategy import check_global_batch_size

rng = np.random.default_rng(0)
x = rng.integers(1, 20, size=(12, 10)).astype("int32")
y = rng.integers(1, 20, size=(12, 10)).astype("int32")
w = np.ones((12, 10), "float32")
w[:3, 3:] = 0  # padding only in the first replica's half of every global batch
results = {}
for name in ("default", "mirrored"):
    strategy = create_strategy(name)
    check_global_batch_size(strategy, 6)
    keras.utils.set_random_seed(3)
    with strategy.scope():
        model = RecurrentLM(vocabulary_size=20, cell="lstm", num_layers=2, hidden_dim=8,
                            sequence_length=16)
        model.build()
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss=MaskedSparseCrossEntropy())
    data = tf.data.Dataset.from_tensor_slices(({"token_ids": x}, y, w)).batch(6)
    history = model.fit(data, epochs=3, verbose=0, shuffle=False).history["loss"]
    results[name] = dict(replicas=strategy.num_replicas_in_sync, losses=history,
                         evaluation=model.evaluate(data, verbose=0))
try:
    check_global_batch_size(create_strategy("mirrored"), 5)
except ValueError as error:
    results["odd_batch_error"] = str(error)
print(json.dumps(results))
"""


@pytest.mark.slow
def test_recurrent_lm_trains_the_same_under_two_mirrored_cpus(tmp_path):
    """Same global batch and objective, one or two replicas: the same loss curve."""
    import json
    import os
    import subprocess
    import sys

    import numpy as np

    script = tmp_path / "mirrored_rnn.py"
    script.write_text(MIRRORED_RNN_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    default, mirrored = results["default"], results["mirrored"]
    assert (default["replicas"], mirrored["replicas"]) == (1, 2)
    assert len(default["losses"]) == 3 and default["losses"][-1] < default["losses"][0]
    np.testing.assert_allclose(mirrored["losses"], default["losses"], rtol=1e-5)
    np.testing.assert_allclose(mirrored["evaluation"], default["evaluation"], rtol=1e-5)
    assert "multiple of the 2 replicas of MirroredStrategy" in results["odd_batch_error"]


def test_a_keras_without_the_trainer_internals_is_a_clear_error(monkeypatch):
    """Multi-worker training replaces private Keras functions; if they move, it says so."""
    from keras_lm.training import multi_worker

    model = keras.Sequential([keras.layers.Dense(1)])
    monkeypatch.setattr(multi_worker, "_PRIVATE_API_ERROR",
                        ImportError("No module named 'keras.src.backend.tensorflow.trainer'"))
    with pytest.raises(RuntimeError, match=r"Keras 3\.\d+.* not supported.*No module named.*"
                                           r"strategy='mirrored'"):
        multi_worker.prepare_for_multi_worker(model, tf.distribute.get_strategy())
    monkeypatch.setattr(multi_worker, "_PRIVATE_API_ERROR", None)
    monkeypatch.setattr(multi_worker, "_PRIVATE_MODEL_METHODS", ("_symbolic_build", "_gone"))
    with pytest.raises(RuntimeError, match=r"lacks Model\._gone\."):
        multi_worker.prepare_for_multi_worker(model, tf.distribute.get_strategy())
    assert "_maybe_symbolic_build" not in vars(model)  # nothing was patched
