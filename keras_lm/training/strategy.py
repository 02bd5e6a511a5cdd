"""Distribution strategy, XLA and mixed precision: the three switches a run sets first."""

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
        ValueError: for an unknown `name`, or `"tpu"` when no TPU can be found.

    Example:

    >>> strategy = create_strategy("mirrored")
    >>> with strategy.scope():
    ...     model = build_model()
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in STRATEGIES:
        raise ValueError(f"Unknown `strategy` {name!r}. Expected one of {STRATEGIES}.")
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
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _create_tpu_strategy(tpu)


def _create_tpu_strategy(tpu):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(
            f"strategy='tpu' found no TPU (tpu={tpu!r}): {str(error).rstrip('.')}. Run on a "
            "TPU VM or pass its name/address as `tpu`, or choose strategy='default' or 'mirrored'."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


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
