"""Causal attention core under XLA: our einsum attention against keras.ops.dot_product_attention.

Our `keras_lm.layers.MultiHeadAttention` computes attention with two einsums over a
[B, T, K, G, Dh] query (grouped-query layout) and a boolean mask applied with `where`
(`_compute_mask` + `_attend`); keras-hub's GPT-2 (through `keras.layers.MultiHeadAttention`
with dropout 0) calls `keras.ops.dot_product_attention(..., is_causal=True)`, which on the
TensorFlow backend is also einsum-based ([B, T, N, H] layout). For sequences longer than
64 positions our layer runs causal self-attention in query blocks, each over the keys up to
its end, normalising the softmax after the product with V (`_attend_causal_blocks`; timed
as `keras_lm_causal_blocks`, the path XLA-compiled training takes). This script times them on
the same projected q, k, v [B, T, H, Dh] (no projections), forward and forward+backward, in
`tf.function(jit_compile=True)`, alternating, median of `--rounds` rounds, by the wall clock
and in process CPU time; it first checks that the outputs agree.

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
from keras_lm.layers.multi_head_attention import causal_block_for

PEER = "keras_dot_product_attention"


def attention_functions(num_heads, head_dim, length):
    layer = MultiHeadAttention(num_heads=num_heads, key_dim=head_dim)
    layer.build((None, None, num_heads * head_dim))

    def ours(q, k, v):  # the two calls MultiHeadAttention.call makes after its projections
        mask = layer._compute_mask(q, k.shape[1], None, True, 0)
        return layer._attend(q, k, v, mask, training=False)

    def ours_blocks(q, k, v):  # what MultiHeadAttention.call runs for T > 64
        mask = layer._compute_mask(q, k.shape[1], None, True, 0)
        return layer._attend_causal_blocks(q, k, v, mask, False, causal_block_for(length))

    def keras_ops(q, k, v):
        return keras.ops.dot_product_attention(q, k, v, is_causal=True)

    functions = {"keras_lm_einsum": ours}
    if causal_block_for(length) < length:
        functions["keras_lm_causal_blocks"] = ours_blocks
    functions[PEER] = keras_ops
    return functions


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
        functions = attention_functions(h, dh, t)
        outputs = [fn(q, k, v).numpy() for fn in functions.values()]
        for output in outputs[1:]:
            np.testing.assert_allclose(output, outputs[0], rtol=1e-4, atol=1e-5)
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
                    + "; time ratio to dot_product_attention: " + ", ".join(
                        f"{name} {value / medians[PEER]:.2f}"
                        for name, value in medians.items() if name != PEER))


if __name__ == "__main__":
    main()
