"""Where a training step's time goes: the XLA kernels of `DecoderLM`'s step, summed by kind.

Runs `--steps` steps of `model.fit` (the benchmark setup of `train_speed.py`: synthetic ids,
AdamW, XLA) under the TensorFlow profiler with XLA:CPU's kernel trace events on
(`--xla_cpu_enable_xprof_traceme`), reads the profile back (the XPlane protobuf that
TensorFlow ships) and prints each kernel kind's time per step and share: `MatMul` / `dot`
(the matmuls), `*_fusion` (XLA's fused element-wise work), `wrapped_reduce-window` (the
first half of XLA:CPU's two-stage reductions), copies and transposes. It answers "how much
of the step is matmul", which bounds what any other change can win.

The profiler keeps a bounded number of events: for many short kernels (the small GPT) it
keeps a sample, so read the shares, not the sums. The raw profile stays in `--logdir` for
TensorBoard's profile plugin.

Usage (from the repository root):
    python benchmarks/profile_step.py --size=small --steps=10     # ~1 minute on 2 cores
    python benchmarks/profile_step.py --size=baby --steps=2       # ~1 minute
"""

import argparse
import collections
import glob
import os
import re

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_xprof_traceme=true").strip()

import gpt_setup  # noqa: E402  (sets sys.path and TF logging first)
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402
from train_speed import compile_model  # noqa: E402
from train_speed import synthetic_dataset  # noqa: E402
from train_speed import timed_fit  # noqa: E402

# Runtime bookkeeping events that enclose kernels (counted in their kernels instead).
_ENCLOSING = ("ThunkExecutor", "SlinkyThreadPool", "Executor", "CpuExecutable", "BlockUntil",
              "Eager", "TFE_", "KernelAndDevice", "multi_step", "FunctionRun", "Iterator",
              "ParallelFor", "end: ")


def kernel_times(logdir):
    """{kernel kind: (picoseconds, count)} of the XLA kernels in the newest profile."""
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    times, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            if "Eigen" not in line.name and "tf_Compute" not in line.name:
                continue  # python and tf.data threads
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if name.startswith(_ENCLOSING):
                    continue
                kind = re.sub(r"([._]\d+)+$", "", name)  # MatMul.172 -> MatMul
                times[kind] += event.duration_ps
                counts[kind] += 1
    return times, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(gpt_setup.SIZES), default="small")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--logdir", default=None, help="default: /tmp/keras_lm_profile_SIZE")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    logdir = args.logdir or f"/tmp/keras_lm_profile_{args.size}"

    model = gpt_setup.build_ours(args.size)
    compile_model(model, jit_compile=True, ours=True)
    dataset = synthetic_dataset(args.size, keras_hub_inputs=False)
    timed_fit(model, dataset, 3)  # trace, compile, warm up
    tf.profiler.experimental.start(logdir)
    wall, cpu, _ = timed_fit(model, dataset, args.steps)
    tf.profiler.experimental.stop()

    times, counts = kernel_times(logdir)
    total = sum(times.values())
    if not total:
        raise SystemExit(f"No XLA kernel events in the profile under {logdir}.")
    matmul = sum(t for kind, t in times.items() if kind.startswith(("MatMul", "dot")))
    print(f"size {args.size}, {args.steps} steps: {1e3 * wall / args.steps:.1f} ms wall, "
          f"{1e3 * cpu / args.steps:.1f} ms CPU per step; profile in {logdir}")
    print(f"kernel events kept: {sum(counts.values()) / args.steps:.0f} per step; "
          f"matmuls (MatMul*, dot): {100 * matmul / total:.1f}% of the kernel time")
    print(f"{'ms/step':>9} {'share':>6} {'n/step':>7}  kernel kind")
    for kind, t in times.most_common(args.top):
        print(f"{t / 1e9 / args.steps:9.3f} {100 * t / total:5.1f}% "
              f"{counts[kind] / args.steps:7.1f}  {kind}")


if __name__ == "__main__":
    main()
