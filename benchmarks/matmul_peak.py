"""TensorFlow's matmul peak (GFLOP/s) on this machine, float32 and bfloat16, with and without XLA.

The peak is the denominator of model FLOPs utilisation (MFU) in the other benchmarks: a
square [n, n] x [n, n] matmul costs 2 n^3 FLOPs; the best of several timed calls, over a few
sizes, is taken as what TensorFlow can reach on this CPU. Every benchmark report starts with
these numbers (`matmul_peaks()`), so a ratio measured on a loaded machine can be read
against the peak measured at the same time.

Usage (from the repository root):
    python benchmarks/matmul_peak.py [--sizes 512 1024 2048] [--repeats 10]

Takes about half a minute on 2 CPU cores.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

DTYPES = ("float32", "bfloat16")


def matmul_gflops(size, dtype, jit_compile, repeats=10, min_seconds=0.05):
    """Best GFLOP/s of an [n, n] x [n, n] matmul in a `tf.function`, by wall and CPU time.

    Each timed sample runs the matmul as many times as fit in about `min_seconds` (at least
    once), so call overhead does not dominate the small sizes. Besides the wall clock, each
    sample is timed in process CPU time (all threads): FLOPs per CPU-second is what one busy
    core delivers, which other processes on the machine distort much less.

    Args:
        size: int, n.
        dtype: "float32" or "bfloat16".
        jit_compile: bool, XLA-compile the function.
        repeats: int, timed samples; the best is returned.
        min_seconds: float, target duration of one sample.

    Returns:
        (GFLOP/s, GFLOP per CPU-second), each of its best sample.
    """
    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size), np.float32), dtype=dtype)
    b = tf.constant(rng.standard_normal((size, size), np.float32), dtype=dtype)

    @tf.function(jit_compile=jit_compile)
    def matmul(a, b):
        return tf.matmul(a, b)

    matmul(a, b).numpy()  # compile and warm up
    start = time.perf_counter()
    matmul(a, b).numpy()
    calls = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-6)))
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            out = matmul(a, b)
        out.numpy()  # wait for the result
        best_wall = min(best_wall, (time.perf_counter() - wall) / calls)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / calls)
    return 2 * size**3 / best_wall / 1e9, 2 * size**3 / best_cpu / 1e9


def matmul_peaks(sizes=(512, 1024, 2048), repeats=10):
    """Matmul GFLOP/s per dtype, XLA setting and size, and the peak per dtype.

    Args:
        sizes: matrix sizes n to try.
        repeats: timed samples per (dtype, jit, size).

    Returns:
        dict with
            "table": {(dtype, jit_compile, size): GFLOP/s},
            "cpu_table": {(dtype, jit_compile, size): GFLOP per CPU-second},
            "peak": {dtype: best GFLOP/s over sizes and XLA settings},
            "peak_per_cpu_second": {dtype: best GFLOP per CPU-second (one busy core)}.
    """
    table, cpu_table = {}, {}
    for dtype in DTYPES:
        for jit_compile in (False, True):
            for size in sizes:
                key = (dtype, jit_compile, size)
                table[key], cpu_table[key] = matmul_gflops(size, dtype, jit_compile, repeats)

    def best(values):
        return {dtype: max(v for (d, _, _), v in values.items() if d == dtype) for dtype in DTYPES}

    return {"table": table, "cpu_table": cpu_table, "peak": best(table),
            "peak_per_cpu_second": best(cpu_table)}


def format_peaks(peaks):
    """The result of `matmul_peaks()` as a small text table."""
    sizes = sorted({size for (_, _, size) in peaks["table"]})
    lines = [f"matmul GFLOP/s, best of N (TensorFlow {tf.__version__}, {os.cpu_count()} cores); "
             "in brackets: GFLOP per CPU-second",
             f"{'dtype':>9} {'XLA':>5} " + " ".join(f"{f'n={n}':>16}" for n in sizes)]
    for dtype in DTYPES:
        for jit_compile in (False, True):
            key = [(dtype, jit_compile, n) for n in sizes]
            values = " ".join(
                f"{peaks['table'][k]:7.1f} [{peaks['cpu_table'][k]:6.1f}]" for k in key
            )
            lines.append(f"{dtype:>9} {str(jit_compile):>5} {values}")
    lines.append("peak GFLOP/s: " + ", ".join(f"{d} {v:.1f}" for d, v in peaks["peak"].items())
                 + "; peak GFLOP per CPU-second: " + ", ".join(
                     f"{d} {v:.1f}" for d, v in peaks["peak_per_cpu_second"].items()))
    return "\n".join(lines)


def load_average():
    """The 1-minute load average as a string ('?' where /proc is missing)."""
    try:
        with open("/proc/loadavg") as file:
            return " ".join(file.read().split()[:3])
    except OSError:
        return "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    print(format_peaks(matmul_peaks(tuple(args.sizes), args.repeats)))
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
