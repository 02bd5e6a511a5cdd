import logging
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
    # This host has no TPU: a clear error, not a hang or a TF traceback.
    with pytest.raises(ValueError, match="strategy='tpu' found no TPU"):
        create_strategy("tpu", tpu="local")


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
