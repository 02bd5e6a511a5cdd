"""Distribution strategy, XLA and mixed precision: the three switches a run sets first."""

import json
import os
import socket
import urllib.parse

import keras
import tensorflow as tf
from absl import logging

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def create_strategy(name, tpu=None):
    """Creates the `tf.distribute.Strategy` named by a config.

    Args:
        name: one of `"default"` (the current, usually single-device, strategy),
            `"mirrored"` (every local GPU; without GPUs, every logical CPU device),
            `"multi_worker"` (`MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`) or
            `"tpu"`.
        tpu: TPU name or `grpc://` address for `"tpu"`; None lets the resolver find a local
            TPU or the one named by the environment (Cloud TPU VMs, Colab).

    Returns:
        A `tf.distribute.Strategy`, the same object for the same arguments within a process.
        Build and compile the model inside its `scope()`.

    Raises:
        ValueError: for an unknown `name`; `tpu` given with a strategy other than `"tpu"`;
            `"tpu"` when no TPU can be found (a `grpc://` address that does not answer
            within `TPU_CONNECT_TIMEOUT_S` seconds included, instead of waiting forever);
            `"multi_worker"` without a `TF_CONFIG` cluster (it would silently train on this
            machine alone) or with a malformed one.
        RuntimeError: `"multi_worker"` asked for after TensorFlow ran its first op (collective
            ops are configured at program start-up): create it first thing in the program.

    Example:

    >>> strategy = create_strategy("mirrored")
    >>> with strategy.scope():
    ...     model = build_model()
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown `strategy` {name!r}. Expected one of {STRATEGIES}.")
    if tpu and name != "tpu":
        raise ValueError(
            f"`tpu`={tpu!r} is only used by strategy='tpu', but strategy={name!r}: the TPU "
            "would be ignored. Set strategy='tpu' to train on it, or unset `tpu`."
        )
    if name == "default":
        return tf.distribute.get_strategy()
    # One strategy object per process and kind: a second MirroredStrategy over the same devices
    # restarts the collective instance keys, and TF 2.21 then matches its all-reduces against
    # the first one's ("Shape mismatch in the collective instance ..."); a second TPU
    # initialisation would wipe the TPU's memory.
    key = (name, tpu)
    if key not in _STRATEGIES:
        _STRATEGIES[key] = _new_strategy(name, tpu)
    return _STRATEGIES[key]


_STRATEGIES = {}


def _new_strategy(name, tpu):
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        # MirroredStrategy() alone takes all GPUs or, without one, a single CPU; list the
        # logical CPUs explicitly so a CPU host split into logical devices really mirrors.
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return _create_multi_worker_strategy()
    return _create_tpu_strategy(tpu)


def _create_multi_worker_strategy():
    raw = os.environ.get("TF_CONFIG", "")
    fix = (
        'Set TF_CONFIG on every worker, e.g. {"cluster": {"worker": ["host1:port", '
        '"host2:port"]}, "task": {"type": "worker", "index": 0}} (index 1 on host2), or '
        "choose strategy='mirrored' for the devices of this machine."
    )
    if not raw.strip():
        raise ValueError(
            "strategy='multi_worker' needs the TF_CONFIG environment variable, which is not "
            "set: without it every machine would train its own model alone. " + fix
        )
    try:
        tf_config = json.loads(raw)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {raw!r:.200}. {fix}") from None
    if not isinstance(tf_config, dict) or not tf_config.get("cluster"):
        raise ValueError(f"TF_CONFIG has no `cluster`: {raw!r:.200}. {fix}")
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise RuntimeError(
            "strategy='multi_worker' must be created before TensorFlow runs its first op "
            f"({error}). Call keras_lm.training.create_strategy('multi_worker') at the very "
            "start of the program, before loading data or building anything; later calls "
            "return that same strategy."
        ) from error
    except ValueError as error:
        raise ValueError(f"TF_CONFIG {raw!r:.200} is not a usable cluster: {error} {fix}") from None


# Seconds to wait for a TCP connection to a `grpc://` TPU address before giving up.
TPU_CONNECT_TIMEOUT_S = 20


def _check_tpu_address(tpu):
    """Raises an OSError if a `grpc://host:port` address does not accept a connection.

    TensorFlow's own connection to an address with no server waits forever.
    """
    if not tpu or not tpu.startswith("grpc://"):
        return
    address = urllib.parse.urlsplit(tpu)
    port = address.port  # ValueError for a malformed port
    if not address.hostname or port is None:
        raise ValueError("the address has no host:port (expected grpc://HOST:PORT)")
    with socket.create_connection((address.hostname, port), timeout=TPU_CONNECT_TIMEOUT_S):
        pass


def _create_tpu_strategy(tpu):
    try:
        _check_tpu_address(tpu)
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    # OSError: an unreachable grpc:// address, or a TPU name that the Cloud TPU API lookup
    # cannot resolve (urllib's URLError).
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as error:
        raise ValueError(
            f"strategy='tpu' found no TPU (tpu={tpu!r}): {str(error).rstrip('.')}. Run on a "
            "TPU VM or pass its name/address as `tpu`, or choose strategy='default' or 'mirrored'."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def check_global_batch_size(strategy, batch_size):
    """Raises a ValueError unless the global `batch_size` splits evenly over the replicas.

    The `train.batch_size` of a config is the global batch: each of the R replicas gets
    batch_size / R rows. With TF 2.21 / Keras 3.15 a global batch that is not a multiple of R
    fails at the first step of `fit` with an unhelpful "Inputs to operation AddN of type AddN
    must have the same size and shape" (measured: 5 over two mirrored CPUs).

    Args:
        strategy: the `tf.distribute.Strategy` the model trains under.
        batch_size: int, the global batch size.

    Raises:
        ValueError: naming the two nearest valid batch sizes.

    Example:

    >>> check_global_batch_size(tf.distribute.get_strategy(), 12)  # one replica: any size
    """
    replicas = strategy.num_replicas_in_sync
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: {batch_size!r}.")
    if batch_size % replicas:
        lower = batch_size - batch_size % replicas
        upper = lower + replicas
        choices = f"{lower} or {upper}" if lower else f"{upper}"
        raise ValueError(
            f"batch_size={batch_size} is the global batch; it must be a multiple of the "
            f"{replicas} replicas of {type(strategy).__name__} (each takes batch_size / "
            f"{replicas} rows). Use batch_size={choices}."
        )


def resolve_jit_compile(strategy, requested, precision="float32"):
    """The `jit_compile` value to give `model.compile` under `strategy` and `precision`.

    XLA is honoured except in two cases on machines without accelerators, where this returns
    False and logs why:

    - A multi-replica strategy over CPU devices (a `MirroredStrategy` over logical CPUs):
      with TF 2.21 / Keras 3.15 the compiled step fails with "Trying to access resource ...
      replica_1 ... from device CPU:0".
    - `precision="mixed_bfloat16"` on CPU: oneDNN runs bfloat16 matmuls at about twice the
      float32 rate (with AVX512-BF16 or AMX), but XLA:CPU does not use them and is no faster
      in bfloat16 than in float32. Measured in experiments/benchmarks.md: the baby GPT trains
      1.6x faster in bfloat16 without XLA than keras-hub's float32 with XLA. On a CPU that
      has neither instruction set (`cpu_has_bfloat16_matmul()` is False) oneDNN emulates
      bfloat16, and XLA is kept, with a warning that float32 is as fast.

    Args:
        strategy: the `tf.distribute.Strategy` the model is compiled under.
        requested: the configured `jit_compile` (True, False or "auto").
        precision: the configured precision policy name.

    Returns:
        `requested`, or False in the two cases above.

    Example:

    >>> resolve_jit_compile(tf.distribute.get_strategy(), True)
    True
    """
    if not requested:
        return requested
    if strategy.num_replicas_in_sync > 1:
        device_types = {
            tf.DeviceSpec.from_string(device).device_type
            for device in strategy.extended.worker_devices
        }
        cpu_only = device_types <= {"CPU", None}
    else:  # The default strategy has no worker_devices; it runs where TensorFlow places ops.
        cpu_only = not _has_accelerator()
    if cpu_only and strategy.num_replicas_in_sync > 1:
        logging.info(
            "jit_compile=%r turned off: %s with %d replicas on CPU devices only; XLA cannot "
            'compile a multi-replica step over CPUs in TF 2.21 / Keras 3.15 ("Trying to access '
            'resource ... replica_1 ... from device CPU:0").',
            requested,
            type(strategy).__name__,
            strategy.num_replicas_in_sync,
        )
        return False
    if cpu_only and precision == "mixed_bfloat16":
        if cpu_has_bfloat16_matmul() is False:
            logging.warning(
                "precision mixed_bfloat16 on a CPU without bfloat16 matmul instructions "
                "(no avx512_bf16 or amx_bf16 in /proc/cpuinfo): bfloat16 is emulated and no "
                "faster than float32 here; jit_compile=%r kept (XLA is the faster path "
                "without them). float32 is the better choice on this CPU.",
                requested,
            )
            return requested
        logging.info(
            "jit_compile=%r turned off for precision mixed_bfloat16 on CPU: oneDNN runs "
            "bfloat16 matmuls about twice as fast as float32, XLA:CPU does not (see "
            "experiments/benchmarks.md). Use float32 for XLA on CPU.",
            requested,
        )
        return False
    return requested


def cpu_has_bfloat16_matmul(cpuinfo_path="/proc/cpuinfo"):
    """Whether this CPU has bfloat16 matmul instructions (x86 AVX512-BF16 or AMX-BF16).

    Returns:
        True or False from the flags in `cpuinfo_path` (Linux); None where that file is
        missing or lists no x86 flags (other systems, ARM), i.e. unknown.
    """
    try:
        with open(cpuinfo_path) as f:
            flags_lines = [line for line in f if line.startswith("flags")]
    except OSError:
        return None
    if not flags_lines:
        return None
    flags = set(flags_lines[0].split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _has_accelerator():
    return any(tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))


def set_precision(precision):
    """Sets the global Keras dtype policy; call it before building the model.

    Args:
        precision: `"float32"`, `"mixed_bfloat16"` (bfloat16 compute, float32 variables: TPUs
            and recent GPUs) or `"mixed_float16"` (float16 compute; Keras then wraps the
            optimizer in a `LossScaleOptimizer` at `compile`).

    Raises:
        ValueError: for any other value.

    Example:

    >>> set_precision("mixed_bfloat16")
    >>> keras.config.dtype_policy().compute_dtype
    'bfloat16'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown `precision` {precision!r}. Expected one of {PRECISIONS}.")
    keras.config.set_dtype_policy(precision)
