"""The matmul ceiling of a training step: how fast a GPT step could be if it were only its matmuls.

A float32 training step of the benchmark GPTs (`gpt_setup.SIZES`) is mostly matmuls, and
keras-hub's step compiles the same matmuls with the same XLA. This script bounds what any
change to the rest of the step can buy:

1. It lists every matmul of one training step of the decoder (`step_matmuls`): for each
   dense projection (fused QKV, attention output, feed-forward up and down, the tied output
   layer) the forward product, the input gradient dY W^T and the weight gradient X^T dY;
   for attention, per head, Q K^T and P V and their four gradient products, over the full
   T x T square. Their FLOPs must add up to 6 (L (4 D^2 + 2 D F) + V D) + 12 L D T per
   token (checked).
2. It times each shape on its own under XLA (`jit_compile=True`), as a loop of the one matmul
   inside one compiled function, so that no per-call dispatch is counted; the best of
   several samples, in each of `--passes` passes over the list (best pass kept).
3. The sum of those times is the step's matmul time. A step cannot be faster than that
   without faster matmuls, so tokens per step / that sum is the **ceiling**: the tokens/s of
   a step whose every other op (layer norms, softmax, GELU, optimizer, copies) took no time.
   A second ceiling charges the attention products half (a causal model needs only the lower
   triangle of each T x T square).
4. With `--rounds` > 0 it trains keras-hub's model of the same size (`train_speed.py`'s
   setup, XLA on) and ours, alternately, and prints each one's tokens/s as a fraction of the
   ceiling, and the ceiling over keras-hub's tokens/s: the largest ratio over keras-hub that
   any change outside the matmuls could reach.

Usage (from the repository root):
    python benchmarks/matmul_ceiling.py --size=small      # ~1.5 minutes on 2 CPU cores
    python benchmarks/matmul_ceiling.py --size=baby       # ~4 minutes
Options: --rounds (training rounds per model, default 5; 0 = the ceiling only), --steps,
--passes.

The loop around each matmul adds an element-wise update of its left operand and a sum of its
output (so that XLA can neither hoist the product out of the loop nor shrink it); that is
well under 1% of the product's FLOPs and leaves the ceiling slightly low, not high.
"""

import argparse
import time

import gpt_setup  # noqa: F401  (sets sys.path and TF logging first)
import keras
import numpy as np
import tensorflow as tf
from gpt_setup import SIZES

DEFAULT_STEPS = {"small": 15, "baby": 2}


def step_matmuls(size):
    """Every matmul of one training step of `SIZES[size]`'s GPT.

    Returns a list of dicts: name; count (calls per step: one per layer); batch (products
    in one call: 1 for a projection, sequences x heads for attention's batched matmuls);
    m, k, n (an [m, k] x [k, n] product); transpose_a / transpose_b (how the operands are
    laid out: the gradients read a saved activation or weight transposed).
    """
    spec = SIZES[size]
    b, t, d = spec["batch_size"], spec["sequence_length"], spec["hidden_dim"]
    h, layers, v = spec["num_heads"], spec["num_layers"], spec["vocabulary_size"]
    f, dh, tokens = 4 * d, d // spec["num_heads"], b * t
    matmuls = []

    def dense(name, d_in, d_out, count):
        # forward X W; input gradient dY W^T; weight gradient X^T dY.
        matmuls.extend([
            dict(name=f"{name} forward", count=count, batch=1, m=tokens, k=d_in, n=d_out,
                 transpose_a=False, transpose_b=False),
            dict(name=f"{name} dX", count=count, batch=1, m=tokens, k=d_out, n=d_in,
                 transpose_a=False, transpose_b=True),
            dict(name=f"{name} dW", count=count, batch=1, m=d_in, k=tokens, n=d_out,
                 transpose_a=True, transpose_b=False),
        ])

    dense("qkv projection", d, 3 * d, layers)
    dense("attention output", d, d, layers)
    dense("feed-forward up", d, f, layers)
    dense("feed-forward down", f, d, layers)
    dense("tied output layer", d, v, 1)
    for name, m, k, n, transpose_a, transpose_b in (
        ("scores Q K^T", t, dh, t, False, True),
        ("values P V", t, t, dh, False, False),
        ("dP = dO V^T", t, dh, t, False, True),
        ("dV = P^T dO", t, t, dh, True, False),
        ("dQ = dS K", t, t, dh, False, False),
        ("dK = dS^T Q", t, t, dh, True, False),
    ):
        # per layer, one batched matmul of a [T, Dh] x [Dh, T]-sized product per sequence
        # and head
        matmuls.append(dict(name=f"attention {name}", count=layers, batch=b * h, m=m, k=k,
                            n=n, transpose_a=transpose_a, transpose_b=transpose_b,
                            attention=True))
    flops = sum(step_flops(x) for x in matmuls)
    expected = tokens * (6 * (layers * (4 * d * d + 2 * d * f) + v * d) + 12 * layers * d * t)
    if flops != expected:
        raise AssertionError(f"step matmul FLOPs {flops:,} != 6 N + 12 L D T = {expected:,}")
    return matmuls


def step_flops(matmul):
    """FLOPs of `matmul` (a `step_matmuls` entry) in one step."""
    return 2 * matmul["count"] * matmul["batch"] * matmul["m"] * matmul["k"] * matmul["n"]


def matmul_seconds(matmul, repeats=7, min_seconds=0.1):
    """Best seconds per step of `matmul`'s calls, timed in a loop inside one XLA function.

    One call is what one layer computes: a 2-D product, or for attention one batched matmul
    ([batch, m, k] x [batch, k, n]), as both models compute them.
    """
    rng = np.random.default_rng(0)
    lead = (matmul["batch"],) if matmul["batch"] > 1 else ()
    a_shape = lead + ((matmul["k"], matmul["m"]) if matmul["transpose_a"]
                      else (matmul["m"], matmul["k"]))
    b_shape = lead + ((matmul["n"], matmul["k"]) if matmul["transpose_b"]
                      else (matmul["k"], matmul["n"]))
    a = tf.constant(rng.standard_normal(a_shape, np.float32) * 0.1)
    b = tf.constant(rng.standard_normal(b_shape, np.float32) * 0.1)

    @tf.function(jit_compile=True)
    def loop(a, b, iterations):
        def body(i, a):
            c = tf.matmul(a, b, transpose_a=matmul["transpose_a"],
                          transpose_b=matmul["transpose_b"])
            return i + 1, a + 1e-30 * tf.reduce_sum(c)

        return tf.while_loop(lambda i, a: i < iterations, body, (0, a))[1]

    loop(a, b, tf.constant(2)).numpy()  # compile
    start = time.perf_counter()
    loop(a, b, tf.constant(10)).numpy()
    iterations = max(10, int(10 * min_seconds / max(time.perf_counter() - start, 1e-6)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        loop(a, b, tf.constant(iterations)).numpy()
        best = min(best, (time.perf_counter() - start) / iterations)
    return best * matmul["count"]


def ceiling(size, passes=2):
    """Prints the step's matmuls and timings; returns (ceiling tok/s, causal ceiling tok/s).

    Every shape is timed in each of `passes` passes over the list, and its best time is
    kept: a shape that a background process slowed down in one pass does not lower the
    ceiling.
    """
    spec = SIZES[size]
    tokens = spec["batch_size"] * spec["sequence_length"]
    matmuls = step_matmuls(size)
    seconds = [min(times) for times in zip(*[[matmul_seconds(matmul) for matmul in matmuls]
                                             for _ in range(passes)])]
    total = attention = 0.0
    print(f"{'matmul':<32} {'calls x batch':>13} {'m x k x n':>16} {'ms/step':>8} "
          f"{'GFLOP/s':>8}")
    for matmul, seconds in zip(matmuls, seconds):
        shape = f"{matmul['m']}x{matmul['k']}x{matmul['n']}"
        calls = f"{matmul['count']} x {matmul['batch']}"
        print(f"{matmul['name']:<32} {calls:>13} {shape:>16} {seconds * 1e3:8.2f} "
              f"{step_flops(matmul) / seconds / 1e9:8.1f}")
        total += seconds
        attention += seconds if matmul.get("attention") else 0.0
    causal = total - attention / 2
    print(f"matmul time per step: {total * 1e3:.1f} ms (attention {attention * 1e3:.1f} ms); "
          f"{tokens} tokens per step")
    print(f"ceiling: {tokens / total:,.0f} tokens/s (every other op free); with the attention "
          f"products at half (causal): {tokens / causal:,.0f} tokens/s")
    return tokens / total, tokens / causal


def trained_rates(size, rounds, steps):
    """Median tokens/s of keras-hub's and our model, float32 with XLA, alternating rounds."""
    import train_speed  # train_speed's data, optimizer and fit loop, unchanged

    spec = SIZES[size]
    tokens_per_step = spec["batch_size"] * spec["sequence_length"]
    keras.utils.set_random_seed(0)
    models = {"keras_lm": gpt_setup.build_ours(size),
              "keras_hub": gpt_setup.build_keras_hub(size)}
    datasets = {name: train_speed.synthetic_dataset(size, name == "keras_hub")
                for name in models}
    for name, model in models.items():
        train_speed.compile_model(model, jit_compile=True, ours=name == "keras_lm")
        train_speed.timed_fit(model, datasets[name], 3)
    rates = {name: [] for name in models}
    for round_index in range(rounds):
        order = list(models) if round_index % 2 == 0 else list(models)[::-1]
        for name in order:
            wall = train_speed.timed_fit(models[name], datasets[name], steps)[0]
            rates[name].append(steps * tokens_per_step / wall)
    return {name: gpt_setup.median(values) for name, values in rates.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["small", "baby"], default="small")
    parser.add_argument("--rounds", type=int, default=5,
                        help="training rounds per model (0: the ceiling only)")
    parser.add_argument("--steps", type=int, default=None, help="steps per round")
    parser.add_argument("--passes", type=int, default=2,
                        help="timing passes over the matmuls; each shape's best is kept")
    args = parser.parse_args()
    print(gpt_setup.machine_summary())
    print(f"load average at start: {gpt_setup.load_average()}")
    print(f"size {args.size}: {SIZES[args.size]}; float32, XLA\n")
    full, causal = ceiling(args.size, args.passes)
    if args.rounds <= 0:
        return
    rates = trained_rates(args.size, args.rounds, args.steps or DEFAULT_STEPS[args.size])
    print(f"\ntrained, median of {args.rounds} alternating rounds (wall clock; load average "
          f"after: {gpt_setup.load_average()}):")
    for name, rate in rates.items():
        print(f"  {name:<10} {rate:9,.0f} tokens/s = {rate / full:.0%} of the ceiling "
              f"({rate / causal:.0%} of the causal one)")
    print(f"largest ratio over keras-hub that a step of only these matmuls could reach: "
          f"{full / rates['keras_hub']:.2f} (causal: {causal / rates['keras_hub']:.2f}); "
          f"ours now {rates['keras_lm'] / rates['keras_hub']:.2f}")


if __name__ == "__main__":
    main()
