"""Training tokens/s: keras_lm DecoderLM against keras-hub GPT2CausalLM of the same size.

Both models (see `gpt_setup.py`) have identical shapes and parameter counts (checked and
printed), and are trained the same way: `model.fit(dataset, steps_per_epoch=N, epochs=1)`,
the way users train, with

- the same optimizer settings (`keras_lm.training.build_optimizer`'s: AdamW, warmup-cosine,
  weight decay 0.1, global-norm clipping 1.0), each library's own AdamW (`compile_model`);
- the same loss, `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`, no metrics;
- the same precision policy and `jit_compile` (XLA on by default: keras-hub at its best);
- the same synthetic data: random ids held in memory, `tf.data` batches, repeat, prefetch
  (keras-hub also gets its `padding_mask` input, all ones), with tf.data's autotuning off
  (`no_autotune`: with it on, each `fit` call ends only at the next tick of the autotuner,
  which clamps both models' rates to the same few values).

Measurement, in one process: a one-step `fit` of a tiny unrelated model first, which pays
the process's one-time start-up (printed, charged to neither model); then `compile` and a
first `fit` of one step per model (trace + XLA compile + one step: the "first step"
latency), `--warmup` more steps each, then `--rounds` rounds of
`--steps` steps per model, alternating which model goes first, so that both suffer the
same background load. Reported: median tokens/s per model (by the wall clock, and per second
of process CPU time, which other processes distort less), the ratio ours / keras-hub, and
the model FLOPs utilisation (`gpt_setup.train_flops_per_token` x tokens/s over the matmul
peak of the same dtype, measured at the start of the run).

Usage (from the repository root):
    python benchmarks/train_speed.py --size=small     # ~1.5 minutes on 2 CPU cores
    python benchmarks/train_speed.py --size=baby      # ~3.5 minutes
Options: --steps, --rounds, --warmup, --precision {float32,mixed_bfloat16}, --no-jit;
--peer-precision and --peer-jit {on,off} give keras-hub other settings than ours (default:
the same). Our `jit_compile` is resolved as `keras_lm.training.fit` resolves it: in
mixed_bfloat16 on a CPU-only machine XLA is off (oneDNN's bfloat16 matmuls are faster). E.g.
ours in mixed_bfloat16 against keras-hub at float32 with XLA:
    python benchmarks/train_speed.py --size=baby --precision=mixed_bfloat16 \
        --peer-precision=float32 --peer-jit=on
"""

import argparse
import time

import gpt_setup  # noqa: F401  (sets sys.path and TF logging first)
import keras
import numpy as np
import tensorflow as tf
from gpt_setup import SIZES
from matmul_peak import format_peaks
from matmul_peak import matmul_peaks

from keras_lm.training import build_optimizer
from keras_lm.training import compile_for_training
from keras_lm.training import resolve_jit_compile

DEFAULT_STEPS = {"small": 15, "baby": 2}
DEFAULT_ROUNDS = {"small": 11, "baby": 7}


def no_autotune(dataset):
    """`dataset` with tf.data's autotuning off: no stall at the end of each `fit` call.

    With autotuning on (TensorFlow 2.21), a `fit` call returns only at the next tick of the
    autotuner's background thread, 10 ms x (2^k - 1) after the call began (1.27 s, 2.55 s,
    5.11 s, 10.23 s, ...), whatever the model. Both models' rates then snap to the same few
    values (e.g. 8,192 tokens / 10.23 s = 801 tokens/s for two baby-GPT steps) and their
    ratio to 1.00. The data here sits in memory: there is nothing to tune.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def synthetic_dataset(size, keras_hub_inputs, num_batches=8, seed=0):
    """Repeated batches of random ids (x, y), from memory; the same ids for both models."""
    spec = SIZES[size]
    rng = np.random.default_rng(seed)
    shape = (num_batches * spec["batch_size"], spec["sequence_length"] + 1)
    ids = rng.integers(0, spec["vocabulary_size"], shape).astype(np.int32)
    x, y = ids[:, :-1], ids[:, 1:]
    if keras_hub_inputs:
        x = {"token_ids": x, "padding_mask": np.ones_like(x)}
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    return no_autotune(
        dataset.batch(spec["batch_size"], drop_remainder=True).repeat().prefetch(2)
    )


def compile_model(model, jit_compile, ours):
    """The same optimizer settings and loss; each model set up the way its library trains.

    Both get AdamW with the same schedule (warmup-cosine), weight decay 0.1, betas, epsilon
    and global-norm clipping 1.0 (`keras_lm.training.build_optimizer`'s settings).
    keras-hub's users call `model.compile` with Keras's `keras.optimizers.AdamW`; keras_lm's
    trainer uses `keras_lm.training.AdamW` (fused update, no decay on vectors and
    embeddings) through `keras_lm.training.compile_for_training`, which also creates the
    optimizer's variables before the first step, so that `fit` traces the step once.
    """
    optimizer = build_optimizer({"steps": 10_000, "warmup_steps": 10})
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if ours:
        compile_for_training(model, optimizer, loss, jit_compile=jit_compile)
        return
    keras_adamw = keras.optimizers.AdamW(
        learning_rate=optimizer._learning_rate,  # the same schedule object (stateless)
        weight_decay=optimizer.weight_decay,
        beta_1=optimizer.beta_1,
        beta_2=optimizer.beta_2,
        epsilon=optimizer.epsilon,
        global_clipnorm=optimizer.global_clipnorm,
    )
    model.compile(optimizer=keras_adamw, loss=loss, jit_compile=jit_compile)


def warm_up_process():
    """Pays the process's one-time costs before either model's first step is timed: seconds.

    The first `fit` of a process also starts TensorFlow's and XLA's runtimes, tf.data and
    Keras's training loop (thread pools, the XLA:CPU client, lazily built functions), and
    whichever model went first would be charged for it. A tiny unrelated model, compiled
    with XLA and fitted for one step on a tf.data pipeline, pays it instead.
    """
    inputs = keras.Input((8,), dtype="int32")
    hidden = keras.layers.Embedding(16, 8)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(16)(hidden))
    model.compile(optimizer="adam", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = np.zeros((4, 8), np.int32)
    dataset = no_autotune(
        tf.data.Dataset.from_tensor_slices((ids, ids)).batch(2).repeat().prefetch(2)
    )
    return timed_fit(model, dataset, 1)[0]


def timed_fit(model, dataset, steps):
    """`model.fit(dataset, steps_per_epoch=steps, epochs=1)`: (wall s, process CPU s, loss).

    Process CPU time (all threads) is reported beside wall time because it is less
    distorted by other processes taking the cores away.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    history = model.fit(dataset, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, history.history["loss"][-1]


def print_rates(title, rates, extra=None):
    # extra: {column title: {model name: str}}
    """Median/min/max per model (and `extra` columns), then the ours/theirs ratios."""
    print(f"{title}\n{'model':>10} {'median':>9} {'min':>9} {'max':>9}"
          + "".join(f" {name:>12}" for name in (extra or {})))
    for name, values in rates.items():
        print(f"{name:>10} {gpt_setup.median(values):9,.0f} {min(values):9,.0f} "
              f"{max(values):9,.0f}"
              + "".join(f" {column[name]:>12}" for column in (extra or {}).values()))
    ratios = [a / b for a, b in zip(rates["keras_lm"], rates["keras_hub"])]
    medians = [gpt_setup.median(values) for values in rates.values()]
    print(f"ratio keras_lm / keras_hub: {medians[0] / medians[1]:.2f} (of the medians), "
          f"{gpt_setup.median(ratios):.2f} (median of the per-round ratios); per round: "
          + ", ".join(f"{ratio:.2f}" for ratio in ratios))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["small", "baby"], default="small")
    parser.add_argument("--steps", type=int, default=None, help="steps per round")
    parser.add_argument("--rounds", type=int, default=None, help="11 small, 7 baby")
    parser.add_argument("--warmup", type=int, default=5, help="steps after the first")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument("--no-jit", dest="jit_compile", action="store_false")
    parser.add_argument("--peer-precision", choices=["float32", "mixed_bfloat16"], default=None,
                        help="keras-hub's precision (default: --precision)")
    parser.add_argument("--peer-jit", choices=["on", "off"], default=None,
                        help="keras-hub's jit_compile (default: ours)")
    args = parser.parse_args()
    precision = {"keras_lm": args.precision,
                 "keras_hub": args.peer_precision or args.precision}
    # Ours as keras_lm.training.fit resolves it (mixed_bfloat16 on CPU: no XLA, see
    # resolve_jit_compile); keras-hub as asked.
    jit = {"keras_lm": resolve_jit_compile(tf.distribute.get_strategy(), args.jit_compile,
                                           args.precision),
           "keras_hub": args.jit_compile if args.peer_jit is None else args.peer_jit == "on"}
    steps = args.steps or DEFAULT_STEPS[args.size]
    args.rounds = args.rounds or DEFAULT_ROUNDS[args.size]
    spec = SIZES[args.size]
    tokens_per_step = spec["batch_size"] * spec["sequence_length"]

    print(gpt_setup.machine_summary())
    print(f"load average at start: {gpt_setup.load_average()}")
    peaks = matmul_peaks(sizes=(1024, 2048), repeats=10)
    print(format_peaks(peaks))

    keras.utils.set_random_seed(0)
    models = {}
    for name, build in (("keras_lm", gpt_setup.build_ours),
                        ("keras_hub", gpt_setup.build_keras_hub)):
        keras.config.set_dtype_policy(precision[name])
        models[name] = build(args.size)
    keras.config.set_dtype_policy("float32")
    params = {name: model.count_params() for name, model in models.items()}
    non_embedding = {name: gpt_setup.count_non_embedding(m, args.size)
                     for name, m in models.items()}
    print(f"\nsize {args.size}: {spec}; precision {precision}, jit_compile {jit}")
    print(f"parameters: {params}; non-embedding: {non_embedding}")
    if len(set(params.values())) != 1:
        raise SystemExit(f"Parameter counts differ: {params}; the models are not the same size.")
    datasets = {"keras_lm": synthetic_dataset(args.size, keras_hub_inputs=False),
                "keras_hub": synthetic_dataset(args.size, keras_hub_inputs=True)}

    print(f"process warm-up (one-time start-up, charged to neither model): "
          f"{warm_up_process():.1f} s")
    first_step, first_step_cpu = {}, {}
    for name, model in models.items():
        wall, cpu = time.perf_counter(), time.process_time()
        compile_model(model, jit[name], ours=name == "keras_lm")
        timed_fit(model, datasets[name], 1)
        first_step[name] = time.perf_counter() - wall
        first_step_cpu[name] = time.process_time() - cpu
        timed_fit(model, datasets[name], args.warmup)

    print(f"load average before the rounds: {gpt_setup.load_average()}")
    wall_rates = {name: [] for name in models}
    cpu_rates = {name: [] for name in models}
    losses = {}
    for round_index in range(args.rounds):
        order = list(models) if round_index % 2 == 0 else list(models)[::-1]
        for name in order:
            wall, cpu, losses[name] = timed_fit(models[name], datasets[name], steps)
            wall_rates[name].append(steps * tokens_per_step / wall)
            cpu_rates[name].append(steps * tokens_per_step / cpu)
        print(f"round {round_index + 1}: " + ", ".join(
            f"{name} {wall_rates[name][-1]:,.0f} tok/s" for name in models))
    print(f"load average after the rounds: {gpt_setup.load_average()}")

    peak_dtypes = {name: "bfloat16" if value == "mixed_bfloat16" else "float32"
                   for name, value in precision.items()}
    peaks_of = {name: peaks["peak"][dtype] * 1e9 for name, dtype in peak_dtypes.items()}
    flops_per_token = gpt_setup.train_flops_per_token(args.size)
    print(f"\nmodel FLOPs per token: {flops_per_token:,} (6 N + 12 L D T, N = "
          f"{gpt_setup.matmul_params(args.size):,}); matmul peaks (GFLOP/s) for the MFU: "
          + ", ".join(f"{name} {peak_dtypes[name]} {peaks_of[name] / 1e9:.1f}"
                      for name in models)
          + f"; {args.rounds} rounds x {steps} steps x {tokens_per_step} tokens per model")
    extra = {
        "MFU(median)": {name: f"{gpt_setup.median(v) * flops_per_token / peaks_of[name]:.1%}"
                        for name, v in wall_rates.items()},
        "first step s": {name: f"{value:.1f}" for name, value in first_step.items()},
        "(CPU s)": {name: f"{value:.1f}" for name, value in first_step_cpu.items()},
        "last loss": {name: f"{value:.3f}" for name, value in losses.items()},
    }
    print_rates("training tokens/s (wall clock)", wall_rates, extra)
    # FLOPs per CPU-second over the matmul's FLOPs per CPU-second: how well the cores are
    # used while the process runs, much less dependent on the load than wall-clock MFU.
    per_core_peak = {name: peaks["peak_per_cpu_second"][dtype] * 1e9
                     for name, dtype in peak_dtypes.items()}
    print_rates("training tokens per CPU-second (process time, all threads)", cpu_rates, {
        "MFU/busy core": {
            name: f"{gpt_setup.median(v) * flops_per_token / per_core_peak[name]:.1%}"
            for name, v in cpu_rates.items()},
    })


if __name__ == "__main__":
    main()
