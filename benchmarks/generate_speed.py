"""Greedy generation tokens/s: keras_lm DecoderLM.generate against keras-hub GPT2CausalLM.generate.

Both models have the same sizes (see `gpt_setup.py`), random weights, and are called the way
their users call them, with token ids in and token ids out:

- ours: `model.generate(prompts, max_new_tokens=M, stop_token_ids=[])` with `prompts` a list
  of B token-id lists (greedy is the default, temperature 0); one XLA-compiled
  `tf.while_loop` with a KV cache of length P + M;
- keras-hub: `GPT2CausalLM(backbone, preprocessor=None)`, compiled with `sampler="greedy"`,
  `generate({"token_ids": [B, P + M], "padding_mask": [B, P + M]}, stop_token_ids=None)`:
  it fills every position after the prompt, so it also adds exactly M tokens per row (the
  script checks both counts). keras-hub is measured twice: with `jit_compile=True` (XLA,
  its best setting, and the ratio's denominator) and with its CPU default (Keras resolves
  `jit_compile="auto"` to False on a machine without accelerators).

Both prefill the whole [B, P + M] array once, then run M single-token cached steps.
Measurement, in one process: a first call per model (trace + compile + one call: reported
as "first call"), one more warm-up call, then `--rounds` rounds of `--calls` calls per model,
alternating the order. tokens/s = B x M x calls / seconds (new tokens only), by the wall clock
and per second of process CPU time (all threads; less distorted by other processes).

Cases: the small GPT (context 64) with P = 16, M = 48 at batch 1 and 8; and the small GPT
with a 512-token context, P = 12, M = 500 at batch 1.

Usage (from the repository root):
    python benchmarks/generate_speed.py            # ~1.5-2 minutes on 2 CPU cores
Options: --rounds, --calls, --skip-long.
"""

import argparse
import time

import gpt_setup  # noqa: F401  (sets sys.path and TF logging first)
import keras
import numpy as np
from matmul_peak import format_peaks
from matmul_peak import matmul_peaks

CASES = [  # (size, batch, prompt length P, new tokens M)
    ("small", 1, 16, 48),
    ("small", 8, 16, 48),
    ("small512", 1, 12, 500),
]


def ours_generate(model, prompts, new_tokens):
    def call():
        out = model.generate(prompts.tolist(), max_new_tokens=new_tokens, stop_token_ids=[])
        return [len(row) for row in out]

    return call


def keras_hub_generate(model, prompts, new_tokens):
    batch, prompt_length = prompts.shape
    token_ids = np.zeros((batch, prompt_length + new_tokens), np.int32)
    token_ids[:, :prompt_length] = prompts
    padding_mask = np.zeros_like(token_ids, dtype=bool)
    padding_mask[:, :prompt_length] = True

    def call():
        out = model.generate(
            {"token_ids": token_ids, "padding_mask": padding_mask}, stop_token_ids=None
        )
        # Returned: prompt + continuation, [B, P + M]; new tokens are those after the prompt.
        return [int(mask.sum()) - prompt_length for mask in out["padding_mask"]]

    return call


def build_models(size):
    keras.utils.set_random_seed(0)
    models = {"keras_lm": gpt_setup.build_ours(size)}
    for name, jit_compile in [("keras_hub_xla", True), ("keras_hub_default", "auto")]:
        model = gpt_setup.build_keras_hub(size)
        model.compile(sampler="greedy", jit_compile=jit_compile)
        models[name] = model
    return models


def run_case(models, size, batch, prompt_length, new_tokens, rounds, calls):
    spec = gpt_setup.SIZES[size]
    rng = np.random.default_rng(batch)
    prompts = rng.integers(1, spec["vocabulary_size"], (batch, prompt_length)).astype(np.int32)
    callers = {"keras_lm": ours_generate(models["keras_lm"], prompts, new_tokens)}
    for name in ("keras_hub_xla", "keras_hub_default"):
        callers[name] = keras_hub_generate(models[name], prompts, new_tokens)

    first_call = {}
    for name, call in callers.items():
        start = time.perf_counter()
        counts = call()
        first_call[name] = time.perf_counter() - start
        if counts != [new_tokens] * batch:
            raise SystemExit(f"{name} added {counts} tokens per row, expected {new_tokens}.")
        call()  # one more warm-up call
    load_before = gpt_setup.load_average()
    wall_rates = {name: [] for name in callers}
    cpu_rates = {name: [] for name in callers}
    for round_index in range(rounds):
        order = list(callers) if round_index % 2 == 0 else list(callers)[::-1]
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                callers[name]()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            wall_rates[name].append(batch * new_tokens * calls / wall)
            cpu_rates[name].append(batch * new_tokens * calls / cpu)
    load_after = gpt_setup.load_average()

    print(f"\n{size} (context {spec['sequence_length']}), batch {batch}, prompt "
          f"{prompt_length} + {new_tokens} new tokens; {rounds} rounds x {calls} calls; "
          f"load {load_before} -> {load_after}")
    print(f"{'model':>18} {'median tok/s':>13} {'min':>8} {'max':>8} {'ms/call':>8} "
          f"{'first call s':>12} {'tok/CPU-s':>10}")
    for name in callers:
        median = gpt_setup.median(wall_rates[name])
        print(f"{name:>18} {median:13,.0f} {min(wall_rates[name]):8,.0f} "
              f"{max(wall_rates[name]):8,.0f} {1000 * batch * new_tokens / median:8.1f} "
              f"{first_call[name]:12.1f} {gpt_setup.median(cpu_rates[name]):10,.0f}")
    for other in ("keras_hub_xla", "keras_hub_default"):
        for label, rates in (("wall", wall_rates), ("CPU", cpu_rates)):
            ratios = [a / b for a, b in zip(rates["keras_lm"], rates[other])]
            print(f"ratio keras_lm / {other} ({label}): "
                  f"{gpt_setup.median(rates['keras_lm']) / gpt_setup.median(rates[other]):.2f} "
                  f"(of the medians), {gpt_setup.median(ratios):.2f} (median of the per-round "
                  "ratios); per round: " + ", ".join(f"{r:.2f}" for r in ratios))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3, help="calls per round (long case: 1)")
    parser.add_argument("--skip-long", action="store_true", help="skip the 512-context case")
    args = parser.parse_args()

    print(gpt_setup.machine_summary())
    print(f"load average at start: {gpt_setup.load_average()}")
    print(format_peaks(matmul_peaks(sizes=(1024, 2048), repeats=5)))
    built = {}
    for size, batch, prompt_length, new_tokens in CASES:
        if size == "small512" and args.skip_long:
            continue
        if size not in built:
            built[size] = build_models(size)
        calls = 1 if new_tokens > 100 else args.calls
        run_case(built[size], size, batch, prompt_length, new_tokens, args.rounds, calls)


if __name__ == "__main__":
    main()
