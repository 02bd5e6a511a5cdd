"""Training tokens/s of `DecoderLM` under TensorFlow's thread settings (inter_op / intra_op).

TensorFlow fixes its thread pools when it starts, so each setting runs in a child process:
the child builds the benchmark model (`gpt_setup.build_ours`), compiles it the way
`train_speed.py` does (AdamW, XLA), fits `--warmup` steps, then times `--steps` steps of
`model.fit` and prints one JSON line. The parent runs `--rounds` rounds, each round every
setting once in a rotated order (so that each suffers the same background load), and prints
the median tokens/s per setting (wall clock and per CPU-second) and its ratio to TensorFlow's
default (0 = one thread per core for both pools).

Usage (from the repository root):
    python benchmarks/thread_settings.py --size=small     # ~4 minutes on 2 CPU cores
    python benchmarks/thread_settings.py --settings=0/0,1/2,2/1,1/1 --rounds=5
A setting is INTER/INTRA: `tf.config.threading.set_inter_op_parallelism_threads(INTER)` and
`set_intra_op_parallelism_threads(INTRA)`; XLA:CPU runs its kernels on the intra-op pool.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def child(size, inter, intra, warmup, steps):
    """Times `steps` steps under one thread setting; prints {"wall": tok/s, "cpu": tok/s}."""
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(inter)
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    import gpt_setup  # noqa: F401  (sets sys.path and TF logging)
    from gpt_setup import SIZES
    from gpt_setup import build_ours
    from train_speed import compile_model
    from train_speed import synthetic_dataset
    from train_speed import timed_fit

    model = build_ours(size)
    compile_model(model, jit_compile=True, ours=True)
    dataset = synthetic_dataset(size, keras_hub_inputs=False)
    timed_fit(model, dataset, 1 + warmup)
    wall, cpu, loss = timed_fit(model, dataset, steps)
    tokens = steps * SIZES[size]["batch_size"] * SIZES[size]["sequence_length"]
    threads = (tf.config.threading.get_inter_op_parallelism_threads(),
               tf.config.threading.get_intra_op_parallelism_threads())
    print(json.dumps({"wall": tokens / wall, "cpu": tokens / cpu, "loss": float(loss),
                      "threads": threads}))


def parse_settings(text):
    settings = []
    for item in text.split(","):
        try:
            inter, intra = (int(part) for part in item.split("/"))
        except ValueError:
            raise SystemExit(f"--settings: {item!r} is not INTER/INTRA, e.g. 1/2 "
                             "(0 = TensorFlow's default)")
        settings.append((inter, intra))
    if (0, 0) not in settings:
        settings.insert(0, (0, 0))  # the reference the ratios are taken against
    return settings


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["small", "baby"], default="small")
    parser.add_argument("--settings", default="0/0,1/2,2/1,1/1",
                        help="comma-separated INTER/INTRA thread counts; 0 = default")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="30 small, 3 baby")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = args.steps or {"small": 30, "baby": 3}[args.size]
    if args.child:
        inter, intra = parse_settings(args.child)[-1]
        child(args.size, inter, intra, args.warmup, steps)
        return

    settings = parse_settings(args.settings)
    cores = os.cpu_count()
    print(f"DecoderLM {args.size}, float32, XLA; {args.rounds} rounds x {steps} steps per "
          f"setting, {cores} CPU cores; load average {os.getloadavg()[0]:.1f}")
    here = os.path.dirname(os.path.abspath(__file__))
    rates = {setting: [] for setting in settings}
    start = time.perf_counter()
    for round_index in range(args.rounds):
        shift = round_index % len(settings)
        for inter, intra in settings[shift:] + settings[:shift]:
            command = [sys.executable, os.path.join(here, "thread_settings.py"),
                       f"--size={args.size}", f"--steps={steps}", f"--warmup={args.warmup}",
                       f"--child={inter}/{intra}"]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
            if result.returncode or not lines:
                raise SystemExit(f"setting {inter}/{intra} failed:\n{result.stderr[-3000:]}")
            rates[(inter, intra)].append(json.loads(lines[-1]))
        print(f"round {round_index + 1}/{args.rounds} done ({time.perf_counter() - start:.0f} s)",
              flush=True)

    base = {key: statistics.median(r[key] for r in rates[(0, 0)]) for key in ("wall", "cpu")}
    print(f"\n{'inter/intra':>11} {'threads':>8} {'tok/s wall':>11} {'ratio':>6} "
          f"{'tok/CPU-s':>10} {'ratio':>6}")
    for setting, results in rates.items():
        wall = statistics.median(r["wall"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        threads = "/".join(str(n) for n in results[0]["threads"])
        print(f"{setting[0]:>5}/{setting[1]:<5} {threads:>8} {wall:11,.0f} "
              f"{wall / base['wall']:6.2f} {cpu:10,.0f} {cpu / base['cpu']:6.2f}")
    print("ratio: median tokens/s of the setting over the default's (0/0)")


if __name__ == "__main__":
    main()
