"""Host memory: a caching allocator for TensorFlow's CPU tensors instead of plain `malloc`.

Why. Unless TensorFlow's oneDNN optimizations are on (below), its CPU allocator hands every
tensor, and every XLA executable's scratch buffer, to the C library's `malloc`, which maps
blocks above its mmap threshold (glibc: 128 KiB at first, at most 32 MiB) fresh from the
kernel and unmaps them on free. A training step's buffers are freed at the end of the step,
so every step touches all of its memory for the first time again: one page fault per 4 KiB.
Measured on 2 CPU cores of an AMD EPYC Zen 3 (`benchmarks/train_speed.py`, float32, XLA):
the small GPT took 10,500 page faults per step (a quarter of the step's CPU time in the
kernel), the baby GPT 283,000 (1.1 GB). TensorFlow's BFC allocator keeps freed blocks for
reuse, so after the first step there are none: 14-21% more tokens/s in those benchmarks,
1.6x for the README's demo, identical results (only where the bytes live changes).

Which CPUs. TensorFlow turns its oneDNN optimizations on by default only on CPUs with
AVX-512 VNNI/bfloat16 or AMX (e.g. AMD Zen 4, Intel Sapphire Rapids; `TF_ENABLE_ONEDNN_OPTS`
overrides). With them on, its default CPU allocator is oneDNN's, which already keeps large
blocks for reuse: no page faults per step, and the BFC allocator changes nothing measurable.
The gain is on the others (AVX2-only CPUs such as the Zen 3 above), where the default is
`malloc`. `default_allocator()` says which one TensorFlow would use.

How. TensorFlow reads `TF_CPU_ALLOCATOR_USE_BFC` once, when its eager context starts (the
first op). `import keras_lm` sets it to `true` unless it is already set (set it to `false`
to keep TensorFlow's default), which works when keras_lm is imported before any TensorFlow
op has run, the usual order. If an op ran first, it is too late; `keras_lm.training.fit`
then says so where the default is `malloc`. The BFC allocator holds the peak of what the
process used until it exits (at most `TF_CPU_BFC_MEM_LIMIT_IN_MB`, 64 GiB by default), which
a training process needs again at every step anyway.
"""

import os

ENV_VAR = "TF_CPU_ALLOCATOR_USE_BFC"

# "enabled": set by keras_lm before TensorFlow started; "user": the variable was set before
# keras_lm was imported (to any value), left alone; "too_late": TensorFlow had already
# started, so the default allocator stays.
_status = None


def _tensorflow_started():
    """Whether TensorFlow's eager context (and with it the CPU allocator) already exists."""
    try:
        from tensorflow.python.eager import context
        return context.context()._context_handle is not None  # noqa: SLF001 (no public API)
    except Exception:  # pylint: disable=broad-except  (private API moved: assume not started)
        return False


def use_caching_allocator():
    """Asks TensorFlow for its BFC allocator on the CPU, if it is still time to; idempotent.

    Returns:
        "enabled", "user" or "too_late" (see `status`).
    """
    global _status
    if _status is not None:
        return _status
    if ENV_VAR in os.environ:
        _status = "user"
    elif _tensorflow_started():
        _status = "too_late"
    else:
        os.environ[ENV_VAR] = "true"
        _status = "enabled"
    return _status


def status():
    """What `use_caching_allocator` found: "enabled", "user", "too_late" (or None: not run)."""
    return _status


def onednn_enabled():
    """Whether TensorFlow's oneDNN optimizations (and with them oneDNN's allocator) are on.

    TensorFlow decides from `TF_ENABLE_ONEDNN_OPTS` and, when that is unset, from the CPU's
    features. Returns False if TensorFlow's (private) query is not available.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # pylint: disable=broad-except  (private API moved: assume off)
        return False


def default_allocator():
    """The allocator of TensorFlow's CPU tensors in this process, as far as the settings say.

    Returns:
        "bfc" (TensorFlow's BFC allocator: `TF_CPU_ALLOCATOR_USE_BFC` was true when
        TensorFlow started), "onednn" (oneDNN's allocator, which caches large blocks) or
        "malloc" (no caching).
    """
    if _status != "too_late" and os.environ.get(ENV_VAR, "").lower() in ("1", "true"):
        return "bfc"
    return "onednn" if onednn_enabled() else "malloc"


def caching_allocator_hint():
    """A one-line hint when TensorFlow's CPU tensors ended up on plain `malloc`, else None.

    That happens only when keras_lm could not turn the BFC allocator on (TensorFlow had
    started) on a CPU where TensorFlow's default is `malloc` (oneDNN off).
    """
    if _status != "too_late" or default_allocator() != "malloc":
        return None
    return (
        "TensorFlow ran an op before keras_lm was imported, so its CPU allocator is plain "
        f"malloc: training steps spend time in page faults. Import keras_lm first, or set "
        f"{ENV_VAR}=true in the environment (see keras_lm/host_memory.py)."
    )
