"""Causal attention core under XLA: our einsum attention against keras.ops.dot_product_attention.

Our `keras_lm.layers.MultiHeadAttention` computes attention with two einsums over a
[B, T, K, G, Dh] query (grouped-query layout) and a boolean mask applied with `where`
(`_compute_mask` + `_attend`); keras-hub's GPT-2 (through `keras.layers.MultiHeadAttention`
with dropout 0) calls `keras.ops.dot_product_attention(..., is_causal=True)`, which on the
TensorFlow backend is also einsum-based ([B, T, N, H] layout). This script times the two on
the same projected q, k, v [B, T, H, Dh] (no projections), forward and forward+backward, in
`tf.function(jit_compile=True)`, alternating, median of `--rounds` rounds, by the wall clock
and in process CPU time; it first checks that the two outputs agree.

Usage (from the repository root):
    python benchmarks/attention_speed.py        # ~30 s on 2 CPU cores
"""

import argparse
import time

import gpt_setup  # noqa: F401  (sets sys.path and TF logging first)
import keras
import numpy as np
import tensorflow as tf
from gpt_setup import SIZES

from keras_lm.layers import MultiHeadAttention


def attention_functions(num_heads, head_dim):
    layer = MultiHeadAttention(num_heads=num_heads, key_dim=head_dim)
    layer.build((None, None, num_heads * head_dim))

    def ours(q, k, v):  # the two calls MultiHeadAttention.call makes after its projections
        mask = layer._compute_mask(q, k.shape[1], None, True, 0)
        return layer._attend(q, k, v, mask, training=False)

    def keras_ops(q, k, v):
        return keras.ops.dot_product_attention(q, k, v, is_causal=True)

    return {"keras_lm_einsum": ours, "keras_dot_product_attention": keras_ops}


def compiled(fn, backward):
    if not backward:
        return tf.function(fn, jit_compile=True)

    @tf.function(jit_compile=True)
    def forward_backward(q, k, v):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            loss = tf.reduce_sum(tf.square(fn(q, k, v)))
        return tape.gradient(loss, [q, k, v])

    return forward_backward


def time_calls(fn, args, calls):
    """(wall seconds, process CPU seconds) per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        out = fn(*args)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(gpt_setup.machine_summary())
    for size in ("small", "baby"):
        spec = SIZES[size]
        b, t, h = spec["batch_size"], spec["sequence_length"], spec["num_heads"]
        dh = spec["hidden_dim"] // h
        rng = np.random.default_rng(0)
        q, k, v = (tf.constant(rng.standard_normal((b, t, h, dh)), tf.float32) for _ in "qkv")
        functions = attention_functions(h, dh)
        outputs = [fn(q, k, v).numpy() for fn in functions.values()]
        np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
        calls = 50 if size == "small" else 5
        print(f"\n{size}: q, k, v [B={b}, T={t}, H={h}, Dh={dh}], float32, XLA; "
              f"load {gpt_setup.load_average()}")
        for backward in (False, True):
            fns = {name: compiled(fn, backward) for name, fn in functions.items()}
            for fn in fns.values():
                time_calls(fn, (q, k, v), 2)  # compile, warm up
            times = {name: [] for name in fns}
            for round_index in range(args.rounds):
                order = list(fns) if round_index % 2 == 0 else list(fns)[::-1]
                for name in order:
                    times[name].append(time_calls(fns[name], (q, k, v), calls))
            label = "forward+backward" if backward else "forward"
            for index, clock in enumerate(("wall", "CPU")):
                medians = {name: gpt_setup.median([t[index] for t in values])
                           for name, values in times.items()}
                print(f"  {label:>16} ({clock:>4}): " + ", ".join(
                    f"{name} {1e3 * value:.3f} ms" for name, value in medians.items())
                    + "; time ratio einsum / dot_product_attention "
                    f"{medians['keras_lm_einsum'] / medians['keras_dot_product_attention']:.2f}")


if __name__ == "__main__":
    main()
